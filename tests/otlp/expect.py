"""What should land in PostgreSQL, computed from the spans a client's in-memory exporter saw (the
JSON the client scripts print), and what did land, in the same shape, so a test compares the two.

The reading of a span is the README's mapping table (issue "OpenTelemetry in"), written here on its
own from the GenAI semantic conventions and the instrumentations' attributes, not imported from
producer/otlp: a round is a span whose ``gen_ai.operation.name`` is chat, text_completion or
generate_content, or an OpenInference LLM span; a tool call an ``execute_tool`` span or an
OpenInference TOOL span, tied to the round that asked for it (``Seen.round_of_tool``); a
forward an HTTP client span under a GenAI span. A span's session and user are its own, else its
nearest ancestor's; without any, the trace is the session. Rows are compared as multisets of
tuples that leave out the receiver's own ids: a round is known by its numbers (every round of a
test has its own token counts), an unnamed session by its trace.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import psycopg

Span = dict[str, Any]

ROUND_OPERATIONS = frozenset({"chat", "text_completion", "generate_content"})
SESSION_KEYS = (
    "gen_ai.conversation.id",
    "session.id",
    "traceloop.association.properties.session_id",
    "langfuse.session.id",
)
USER_KEYS = ("user.id", "enduser.id", "traceloop.association.properties.user_id")
MODEL_KEYS = ("gen_ai.response.model", "gen_ai.request.model", "llm.model_name")
PROVIDER_KEYS = ("gen_ai.provider.name", "gen_ai.system", "llm.provider", "llm.system")
PROMPT_KEYS = ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens", "llm.token_count.prompt")
COMPLETION_KEYS = (
    "gen_ai.usage.output_tokens",
    "gen_ai.usage.completion_tokens",
    "llm.token_count.completion",
)
CACHE_READ_KEYS = ("gen_ai.usage.cache_read.input_tokens", "llm.token_count.prompt_details.cache_read")
CACHE_WRITE_KEYS = ("gen_ai.usage.cache_creation.input_tokens", "llm.token_count.prompt_details.cache_write")
REASONING_KEYS = (
    "gen_ai.usage.reasoning.output_tokens",
    "gen_ai.usage.reasoning_tokens",  # OpenLLMetry's
    "llm.token_count.completion_details.reasoning",
)
#: Span events that mark a streamed answer's first token (OpenInference's; OpenLLMetry's chunks).
FIRST_TOKEN_EVENTS = ("First Token Stream Event", "gen_ai.content.completion.chunk")
TOOL_CALL_ID_KEYS = ("gen_ai.tool.call.id", "tool_call.id")


def _first(attributes: dict[str, Any], keys: tuple[str, ...]) -> Any:
    return next((attributes[k] for k in keys if attributes.get(k) not in (None, "")), None)


def is_round(span: Span) -> bool:
    a = span["attributes"]
    return a.get("gen_ai.operation.name") in ROUND_OPERATIONS or a.get("openinference.span.kind") == "LLM"


def is_tool(span: Span) -> bool:
    a = span["attributes"]
    return a.get("gen_ai.operation.name") == "execute_tool" or a.get("openinference.span.kind") == "TOOL"


def is_genai(span: Span) -> bool:
    a = span["attributes"]
    return "gen_ai.operation.name" in a or "openinference.span.kind" in a


def failed(span: Span) -> bool:
    return span["status"] == "ERROR" or "error.type" in span["attributes"]


@dataclass(frozen=True)
class Seen:
    """The spans one client run exported (each once, however often it sent them)."""

    spans: list[Span]

    @classmethod
    def of(cls, output: str) -> Seen:
        doc = json.loads(output.strip().splitlines()[-1])
        return cls(doc["spans"])

    @staticmethod
    def exports(output: str) -> list[str]:
        """Each export's result as the client recorded it (``SUCCESS (n spans)``, ``FAILURE ...``)."""
        return list(json.loads(output.strip().splitlines()[-1])["exports"])

    def _by_id(self) -> dict[tuple[str, str], Span]:
        return {(s["trace_id"], s["span_id"]): s for s in self.spans}

    def _lineage(self, span: Span) -> list[Span]:
        """The span, then its parent, up to the root (as far as the spans seen go)."""
        by_id, found = self._by_id(), [span]
        while found[-1]["parent_span_id"] and (found[-1]["trace_id"], found[-1]["parent_span_id"]) in by_id:
            found.append(by_id[found[-1]["trace_id"], found[-1]["parent_span_id"]])
        return found

    def _inherited(self, span: Span, keys: tuple[str, ...]) -> Any:
        return next(
            (v for s in self._lineage(span) if (v := _first(s["attributes"], keys)) is not None), None
        )

    def session(self, span: Span) -> str:
        """Its session id, or ``trace <id>`` when its trace is the session."""
        return self._inherited(span, SESSION_KEYS) or f"trace {span['trace_id']}"

    def user(self, span: Span) -> str | None:
        value = self._inherited(span, USER_KEYS)
        return None if value is None else str(value)

    def named_sessions(self) -> set[str]:
        return {s for s in map(self.session, self._genai()) if not s.startswith("trace ")}

    def unnamed_traces(self) -> set[str]:
        return {s.removeprefix("trace ") for s in map(self.session, self._genai()) if s.startswith("trace ")}

    def _genai(self) -> list[Span]:
        return [s for s in self.spans if is_round(s) or is_tool(s)]

    def rounds(self) -> list[Span]:
        return [s for s in self.spans if is_round(s)]

    def round_key(self, span: Span) -> tuple[int, int]:
        """How a round is known across the two sides: its prompt and completion tokens."""
        a = span["attributes"]
        return (_first(a, PROMPT_KEYS) or 0, _first(a, COMPLETION_KEYS) or 0)

    def round_of_tool(self, tool: Span) -> tuple[int, int] | None:
        """The round that asked for the tool: its parent, else the round whose output names its id,
        else the last round beside it (same parent) that had ended when it started: an agent runs a
        tool once the answer that asked for it is in (openai-v2 records no call ids by default)."""
        parent = self._lineage(tool)[1:2]
        if parent and is_round(parent[0]):
            return self.round_key(parent[0])
        call_id = _first(tool["attributes"], TOOL_CALL_ID_KEYS)
        asked = [
            r
            for r in self.rounds()
            if call_id
            and any("output" in k and str(call_id) in json.dumps(v) for k, v in r["attributes"].items())
        ]
        if len(asked) == 1:
            return self.round_key(asked[0])
        before = [
            r
            for r in self.rounds()
            if (r["trace_id"], r["parent_span_id"]) == (tool["trace_id"], tool["parent_span_id"])
            and int(r["end_ns"]) <= int(tool["start_ns"])
        ]
        return self.round_key(max(before, key=lambda r: int(r["end_ns"]))) if before else None

    def round_rows(self) -> Counter[tuple[Any, ...]]:
        """(session, model, provider, status, prompt, completion, cache read, cache write, reasoning)."""
        rows: Counter[tuple[Any, ...]] = Counter()
        for span in self.rounds():
            a = span["attributes"]
            rows[
                (
                    self.session(span),
                    _first(a, MODEL_KEYS),
                    _first(a, PROVIDER_KEYS),
                    "error" if failed(span) else "success",
                    *self.round_key(span),
                    _first(a, CACHE_READ_KEYS),
                    _first(a, CACHE_WRITE_KEYS),
                    _first(a, REASONING_KEYS),
                )
            ] += 1
        return rows

    def tokens_per_model(self) -> dict[str, tuple[int, ...]]:
        """model -> (rounds, prompt, completion, cache read, cache write, reasoning), None as 0."""
        return _per_model(self.round_rows())

    def first_token_ms(self) -> list[int]:
        """Each round's time to first token that its span tells: ``gen_ai.response.time_to_first_chunk``
        (seconds), else the time from its start to its first first-token event (whole milliseconds)."""
        found = []
        for span in self.rounds():
            seconds = span["attributes"].get("gen_ai.response.time_to_first_chunk")
            first = next((e for e in span["events"] if e["name"] in FIRST_TOKEN_EVENTS), None)
            if seconds is not None:
                found.append(round(seconds * 1000))
            elif first is not None:
                found.append((int(first["time_ns"]) - int(span["start_ns"])) // 1_000_000)
        return sorted(found)

    def tool_rows(self) -> Counter[tuple[Any, ...]]:
        """(session, tool name, success, the round that asked: its key)."""
        return Counter(
            (
                self.session(s),
                _first(s["attributes"], ("gen_ai.tool.name", "tool.name")),
                not failed(s),
                self.round_of_tool(s),
            )
            for s in self.spans
            if is_tool(s)
        )

    def session_rows(self) -> Counter[tuple[Any, ...]]:
        """(session, user, rounds, tool calls, prompt, completion, cache read, cache write, reasoning)."""
        sessions: dict[str, list[Any]] = {}
        for span in self._genai():
            row = sessions.setdefault(self.session(span), [None, 0, 0, 0, 0, 0, 0, 0])
            row[0] = row[0] or self.user(span)
            if is_tool(span):
                row[2] += 1
                continue
            a = span["attributes"]
            row[1] += 1
            for at, keys in enumerate(
                (PROMPT_KEYS, COMPLETION_KEYS, CACHE_READ_KEYS, CACHE_WRITE_KEYS, REASONING_KEYS), start=3
            ):
                row[at] += _first(a, keys) or 0
        return Counter((sid, *row) for sid, row in sessions.items())

    def forwards(self) -> list[Span]:
        return [
            s
            for s in self.spans
            if s["kind"] == "CLIENT"
            and "http.request.method" in s["attributes"]
            and any(is_genai(p) for p in self._lineage(s)[1:])
        ]

    def forward_rows(self) -> Counter[tuple[Any, ...]]:
        """(session, endpoint (url.full), status code, the round it was made for: its key)."""
        rows: Counter[tuple[Any, ...]] = Counter()
        for span in self.forwards():
            a = span["attributes"]
            above = next((p for p in self._lineage(span)[1:] if is_round(p)), None)
            rows[
                (
                    self.session(span),
                    a.get("url.full") or a.get("server.address"),
                    a.get("http.response.status_code"),
                    None if above is None else self.round_key(above),
                )
            ] += 1
        return rows

    def endpoints(self) -> dict[str, str]:
        """Each name a forward's endpoint may be given (url.full, its path, server.address) -> url.full."""
        found = {}
        for span in self.forwards():
            a = span["attributes"]
            full = a.get("url.full") or a.get("server.address")
            for name in (a.get("url.full"), a.get("server.address"), urlsplit(a.get("url.full") or "").path):
                if name:
                    found[name] = full
        return found


def _per_model(rows: Counter[tuple[Any, ...]]) -> dict[str, tuple[int, ...]]:
    sums: dict[str, list[int]] = {}
    for (_, model, _, _, *tokens), n in rows.items():
        out = sums.setdefault(model, [0] * 6)
        out[0] += n
        for i, value in enumerate(tokens, start=1):
            out[i] += n * (value or 0)
    return {model: tuple(v) for model, v in sums.items()}


@dataclass(frozen=True)
class Landed:
    """What PostgreSQL holds after the worker applied the stream, in :class:`Seen`'s shapes (this
    test's own schema: every row is the client's)."""

    conn: psycopg.Connection[Any]
    seen: Seen

    def label(self, session_id: str | None) -> str | None:
        """A session id as :class:`Seen` names it: itself when the client named it, else the trace it
        stands for (the one unnamed trace, or the one whose id it contains)."""
        if session_id is None or session_id in self.seen.named_sessions():
            return session_id
        traces = self.seen.unnamed_traces()
        inside = [t for t in traces if t in session_id]
        if len(inside) == 1 or (not inside and len(traces) == 1):
            return f"trace {(inside or sorted(traces))[0]}"
        return session_id

    def _round_keys(self) -> dict[str, tuple[int, int]]:
        return {
            rid: (p, c)
            for rid, p, c in self.conn.execute(
                "SELECT round_id, prompt_tokens, completion_tokens FROM round_metrics"
            )
        }

    def round_rows(self) -> Counter[tuple[Any, ...]]:
        return Counter(
            (self.label(sid), *rest)
            for sid, *rest in self.conn.execute(
                "SELECT session_id, model, provider, status, prompt_tokens, completion_tokens,"
                " cache_read_tokens, cache_write_tokens, reasoning_tokens FROM round_metrics"
            )
        )

    def tokens_per_model(self) -> dict[str, tuple[int, ...]]:
        return {
            model: tuple(int(v) for v in rest)
            for model, *rest in self.conn.execute(
                "SELECT model, count(*), sum(prompt_tokens), sum(completion_tokens),"
                " coalesce(sum(cache_read_tokens), 0), coalesce(sum(cache_write_tokens), 0),"
                " coalesce(sum(reasoning_tokens), 0) FROM round_metrics GROUP BY model"
            )
        }

    def first_token_ms(self) -> list[int]:
        return sorted(
            v
            for (v,) in self.conn.execute(
                "SELECT time_to_first_token_ms FROM round_metrics WHERE time_to_first_token_ms IS NOT NULL"
            )
        )

    def tool_rows(self) -> Counter[tuple[Any, ...]]:
        keys = self._round_keys()
        return Counter(
            (self.label(sid), name, success, keys.get(rid))
            for sid, name, success, rid in self.conn.execute(
                "SELECT session_id, tool_name, success, round_id FROM tool_call_metrics"
            )
        )

    def session_rows(self) -> Counter[tuple[Any, ...]]:
        return Counter(
            (self.label(sid), *rest)
            for sid, *rest in self.conn.execute(
                "SELECT session_id, user_id, total_rounds, tool_call_count, prompt_tokens, completion_tokens,"
                " cache_read_tokens, cache_write_tokens, reasoning_tokens FROM session_metrics"
            )
        )

    def forward_rows(self) -> Counter[tuple[Any, ...]]:
        keys, names = self._round_keys(), self.seen.endpoints()
        return Counter(
            (self.label(sid), names.get(endpoint, endpoint), code, keys.get(rid) if rid else None)
            for sid, endpoint, code, rid in self.conn.execute(
                "SELECT session_id, endpoint, status_code, round_id FROM forward_request_metrics"
            )
        )


def _same(what: str, landed: Any, seen: Any) -> None:
    """Equal, or an error that says what landed and was not seen, and what was seen and did not land."""
    if landed == seen:
        return
    if isinstance(landed, Counter):
        extra, missing = landed - seen, seen - landed
        raise AssertionError(
            f"{what}: landed but not seen {sorted(extra.items(), key=repr)}; "
            f"seen but not landed {sorted(missing.items(), key=repr)}"
        )
    raise AssertionError(f"{what}: landed {landed!r}, seen {seen!r}")


def assert_landed(conn: psycopg.Connection[Any], seen: Seen) -> None:
    """PostgreSQL holds exactly what the client's spans say: its rounds (tokens per model, cached and
    reasoning included), tool calls, sessions with their users, and forwards."""
    assert seen.rounds(), "the client made no round: nothing to compare"
    landed = Landed(conn, seen)
    _same(
        "tokens per model (rounds, prompt, completion, cache read, cache write, reasoning)",
        landed.tokens_per_model(),
        seen.tokens_per_model(),
    )
    _same(
        "rounds (session, model, provider, status, prompt, completion, cache read, cache write, reasoning)",
        landed.round_rows(),
        seen.round_rows(),
    )
    _same(
        "tool calls (session, tool, success, the round's prompt and completion tokens)",
        landed.tool_rows(),
        seen.tool_rows(),
    )
    _same(
        "sessions (id, user, rounds, tool calls, prompt, completion, cache read, cache write, reasoning)",
        landed.session_rows(),
        seen.session_rows(),
    )
    _same(
        "forwards (session, endpoint, status code, the round's tokens)",
        landed.forward_rows(),
        seen.forward_rows(),
    )
    _same("times to first token (ms)", landed.first_token_ms(), seen.first_token_ms())
