"""Spans of one OTLP export request -> the contract's events, deterministically, each request on
its own (README: From OpenTelemetry, How spans map; what a span's attributes say is
producer/otlp/attributes.py's).

- **Ids.** Every event id is a UUIDv5 in :data:`NAMESPACE` of ``<trace id>/<span id>/<type>``, so
  an export sent again (OTLP clients re-send after any doubt) gives the same events, which the
  worker's merge applies once. A round, tool call or forward is ``<trace id>-<span id>``.
- **Sessions.** A span's session is its own session attribute, else the nearest ancestor's in the
  request, else its resource's, else its trace id. Each request that holds spans of a session
  sends one session.started, id ``session/<session id>/session.started``, at the earliest of
  them, with the model of its earliest round (else of an agent span) and the user of its earliest
  span that names one. The worker keeps the earliest start time and the latest start's model and
  user, so requests converge in any order. OTLP says nothing of a conversation's end: the
  session stays open until reconcile's grace (contract/liveness.py), except a trace's own
  session, which its root span's end completes (the root ends last: the trace is done).
- **Tool calls** belong to the round that asked for them: the parent span if a round, else the
  nearest round ancestor in the request, else the round whose answer carried the call id, else
  the latest round beside it (same parent) that ended before it started, else a round id made
  from its parent span (the right one when the parent is a round sent in another request).
- **Forwards**: the outermost HTTP client span under a GenAI span of the request (not a tool's),
  with that span's model, provider, session and round.
- A span that is none of these is ignored; one whose attributes cannot make valid events is a
  :class:`~producer.otlp.spans.Rejection` naming the span and the attribute, and gives no event.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from pydantic import ValidationError

from contract import codec
from contract.events import EVENT_TYPES, MAX_ID_LENGTH, MAX_NAME_LENGTH, Event
from producer.otlp import attributes as attrs
from producer.otlp.attributes import Refused
from producer.otlp.spans import Rejection, Span

#: The namespace of every event id the receiver derives (``uuid.uuid5(NAMESPACE, name)``).
NAMESPACE = uuid.UUID("e80ebad5-4451-4d39-be25-384b44beeed4")
_NAMESPACE_BYTES = NAMESPACE.bytes
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

Key = tuple[str, str]  # (trace id, span id)
Found = tuple[str, str]  # (value, the attribute it came from)


@dataclass(frozen=True, slots=True)
class Mapped:
    """What one request's spans became: validated events, ready for contract.codec.encode, and
    the spans that could not become any."""

    events: list[Event]
    rejected: list[Rejection]


def map_spans(spans: Sequence[Span]) -> Mapped:
    """Map the spans of one export request (any number of traces); the same spans always give the
    same events, whatever else was sent before or after."""
    return _Request(spans).run()


def event_id(name: str) -> str:
    """``str(uuid.uuid5(NAMESPACE, name))``, without building the UUID object (hot path)."""
    h = _sha1(_NAMESPACE_BYTES + name.encode()).hexdigest()
    return f"{h[:8]}-{h[8:12]}-5{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:32]}"


_sha1 = hashlib.sha1
#: The variant bits (10xx) set on a hex digit.
_VARIANT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}


def entity_id(trace_id: str, span_id: str) -> str:
    """The round, tool call or forward id of a span: its tail (what the tables show) is the span id."""
    return f"{trace_id}-{span_id}"


def _at(ns: int) -> datetime:
    """Unix nanoseconds -> a UTC datetime, cut to the microsecond. Through a float below 2**52
    microseconds (year 2112), where that is exact and twice as fast."""
    us = ns // 1000
    if us < _FLOAT_EXACT:
        return _from_timestamp(us / 1e6, UTC)
    return _EPOCH + timedelta(microseconds=us)


_FLOAT_EXACT = 2**52
_from_timestamp = datetime.fromtimestamp


@dataclass(slots=True)
class _Session:
    """What a request shows of one session; each mark is (start ns, span id, trace id)."""

    first: tuple[int, str, str]
    model: tuple[int, str, str, str] | None = None  # mark + the earliest round's model
    agent_model: tuple[int, str, str, str] | None = None  # mark + the earliest agent span's model
    user: tuple[int, str, str, str] | None = None  # mark + the earliest user id

    def saw(self, mark: tuple[int, str, str], user: str | None, model: str | None, agent: str | None) -> None:
        self.first = min(self.first, mark)
        if user is not None and (self.user is None or mark < self.user[:3]):
            self.user = (*mark, user)
        if model is not None and (self.model is None or mark < self.model[:3]):
            self.model = (*mark, model)
        if agent is not None and (self.agent_model is None or mark < self.agent_model[:3]):
            self.agent_model = (*mark, agent)


#: Each event type's own validator: a quarter cheaper than the union's, and the times built here
#: are in UTC already (contract.codec.validate converts others). Its errors are explained by
#: contract.codec.validate, on that path only.
_VALIDATORS = {cls.model_fields["type"].default: cls.__pydantic_validator__ for cls in EVENT_TYPES}


def _validate(data: dict[str, Any], sources: Mapping[str, str]) -> Event:
    """The event ``data`` describes; a contract refusal names the span attribute behind the field."""
    try:
        event: Event = _VALIDATORS[data["type"]].validate_python(data)
        return event
    except ValidationError:
        pass
    try:
        return codec.validate(data)
    except codec.ContractError as err:
        top = err.field.split(".", 1)[0]
        field = sources.get(err.field) or sources.get(top) or err.field
        reason = str(err)  # "<contract field>: <reason> (got <value>)", the contract's own words
        if field == err.field:
            reason = reason.removeprefix(f"{field}: ")
        raise Refused(field, reason) from None


def _check_times(span: Span) -> None:
    if span.start_ns <= 0:
        raise Refused("start_time_unix_nano", f"must be a time after 1970, not {span.start_ns}")
    if span.end_ns < span.start_ns:
        raise Refused(
            "end_time_unix_nano", f"is before start_time_unix_nano ({span.end_ns} < {span.start_ns})"
        )


_CALL_ID_KEYS = ("gen_ai.tool.call.id", "tool.id", "tool_call.id")


class _Request:
    """One request's spans, indexed by (trace id, span id), and what mapping them found."""

    def __init__(self, spans: Sequence[Span]) -> None:
        self.spans: dict[Key, Span] = {}
        self.roles: dict[Key, int] = {}
        for span in spans:
            key = (span.trace_id, span.span_id)
            if key not in self.spans:  # a span sent twice in one request is mapped once
                self.spans[key] = span
                self.roles[key] = attrs.role(span)
        self.events: list[Event] = []
        self.rejected: list[Rejection] = []
        self.sessions: dict[str, _Session] = {}
        self._sessions_above: dict[Key, Found | None] = {}
        self._users_above: dict[Key, Found | None] = {}
        self._resources: dict[int, tuple[Found | None, Found | None]] = {}
        self._siblings: dict[tuple[str, str | None], list[Span]] | None = None
        self._calls: dict[Key, Span] | None = None

    def run(self) -> Mapped:
        handlers: dict[int, Callable[[Span, int], None]] = {
            attrs.ROUND: self._round,
            attrs.TOOL: self._tool,
            attrs.AGENT: self._member,
            attrs.CHAIN: self._member,
            attrs.HTTP: self._forward,
        }
        for key, span in self.spans.items():
            role = self.roles[key]
            handler = handlers.get(role)
            if handler is None:
                continue
            try:
                handler(span, role)
            except Refused as refused:
                self.rejected.append(
                    Rejection(span.span_id, span.trace_id, span.name, refused.field, refused.reason)
                )
        return Mapped(self._session_starts() + self.events, self.rejected)

    # --- the spans that make events -----------------------------------------------------------

    def _round(self, span: Span, role: int) -> None:
        _check_times(span)
        a = span.attributes
        found = attrs.model(a)
        if found is None:
            raise Refused(
                "gen_ai.request.model",
                "is required: a round's model is read from gen_ai.response.model, gen_ai.request.model "
                "or llm.model_name, and the span has none of them",
            )
        model, model_key = found
        provider = attrs.provider(a)
        usage = attrs.usage(a, provider, model)
        ttft = attrs.time_to_first_token_ms(span)
        session_id, session_key = self._session(span)
        user = self._user(span)
        round_id = entity_id(span.trace_id, span.span_id)
        failed = attrs.failed(span)
        sources = {"model": model_key, "session_id": session_key, "provider": "gen_ai.provider.name"}
        base = {"round_id": round_id, "session_id": session_id}
        started = _validate(
            {
                **base,
                "type": "round.started",
                "event_id": event_id(f"{span.trace_id}/{span.span_id}/round.started"),
                "occurred_at": _at(span.start_ns),
                "model": model,
                "provider": provider,
            },
            sources,
        )
        completed = _validate(
            {
                **base,
                "type": "round.completed",
                "event_id": event_id(f"{span.trace_id}/{span.span_id}/round.completed"),
                "occurred_at": _at(span.end_ns),
                "status": ("cancelled" if attrs.cancelled(span) else "error") if failed else "success",
                "usage": usage,
                "error": attrs.error_text(span) if failed else None,
                "time_to_first_token_ms": ttft,
            },
            sources,
        )
        ended = self._trace_end(span, session_id, session_key)
        self.events += (started, completed, *ended)
        self._saw(session_id, span, user, model=model)

    def _tool(self, span: Span, role: int) -> None:
        _check_times(span)
        # The GenAI conventions name the span "execute_tool <tool>", OpenInference after the tool.
        openinference = "gen_ai.operation.name" not in span.attributes
        name = attrs.tool_name(span, "" if openinference else "execute_tool ")
        session_id, session_key = self._session(span)
        user = self._user(span)
        failed = attrs.failed(span)
        sources = {"session_id": session_key, "tool_name": "gen_ai.tool.name"}
        base = {
            "tool_call_id": entity_id(span.trace_id, span.span_id),
            "round_id": self._round_of_tool(span),
            "session_id": session_id,
        }
        started = _validate(
            {
                **base,
                "type": "tool.started",
                "event_id": event_id(f"{span.trace_id}/{span.span_id}/tool.started"),
                "occurred_at": _at(span.start_ns),
                "tool_name": name,
            },
            sources,
        )
        completed = _validate(
            {
                **base,
                "type": "tool.completed",
                "event_id": event_id(f"{span.trace_id}/{span.span_id}/tool.completed"),
                "occurred_at": _at(span.end_ns),
                "success": not failed,
                "error": attrs.error_text(span) if failed else None,
            },
            sources,
        )
        ended = self._trace_end(span, session_id, session_key)
        self.events += (started, completed, *ended)
        self._saw(session_id, span, user)

    def _member(self, span: Span, role: int) -> None:
        """An agent or chain span: no event of its own, but its session's (its start; an agent's
        model when the request has no round; a trace's root ends the trace's session)."""
        _check_times(span)
        session_id, session_key = self._session(span)
        user = self._user(span)
        model = None
        if role == attrs.AGENT:
            try:
                found = attrs.model(span.attributes)
            except Refused:
                found = None  # only a fallback for the session's model: a round's is preferred
            model = found[0] if found else None
        self.events += self._trace_end(span, session_id, session_key)
        self._saw(session_id, span, user, agent=model)

    def _forward(self, span: Span, role: int) -> None:
        anchor = self._genai_above(span)
        if anchor is None:
            return  # not under a GenAI span of this request: not a model API call that we can tell
        anchor_role = self.roles[(anchor.trace_id, anchor.span_id)]
        try:
            found = attrs.model(anchor.attributes)
        except Refused:
            return  # the anchor itself is refused for it, naming the attribute
        if anchor_role == attrs.TOOL or found is None:
            return  # a tool's own requests, or a GenAI span that names no model: not forwards
        a = span.attributes
        endpoint, endpoint_key = _endpoint(a)
        if endpoint is None:
            return
        _check_times(span)
        model, model_key = found
        provider = attrs.provider(anchor.attributes)
        session_id, session_key = self._session(anchor)
        is_round = anchor_role == attrs.ROUND
        code = a.get("http.response.status_code", a.get("http.status_code"))
        code = code if isinstance(code, int) and not isinstance(code, bool) and 100 <= code <= 599 else None
        if attrs.timed_out(span):
            status = "timeout"
        elif (code is not None and code >= 400) or attrs.failed(span):
            status = "error"
        else:
            status = "success"
        usage = attrs.usage(a, provider, model) if attrs.has_usage(a) else None
        forward_id = entity_id(span.trace_id, span.span_id)
        sources = {"endpoint": endpoint_key, "model": model_key, "session_id": session_key}
        started = _validate(
            {
                "type": "forward.started",
                "event_id": event_id(f"{span.trace_id}/{span.span_id}/forward.started"),
                "occurred_at": _at(span.start_ns),
                "forward_id": forward_id,
                "endpoint": endpoint,
                "model": model,
                "is_stream": attrs.streamed(anchor) if is_round else False,
                "provider": provider,
                "session_id": session_id,
                "round_id": entity_id(anchor.trace_id, anchor.span_id) if is_round else None,
            },
            sources,
        )
        completed = _validate(
            {
                "type": "forward.completed",
                "event_id": event_id(f"{span.trace_id}/{span.span_id}/forward.completed"),
                "occurred_at": _at(span.end_ns),
                "forward_id": forward_id,
                "status": status,
                "status_code": code,
                "usage": usage,
                "error": attrs.error_text(span) if status != "success" else None,
            },
            sources,
        )
        self.events += (started, completed)

    # --- sessions -------------------------------------------------------------------------------

    def _saw(
        self,
        session_id: str,
        span: Span,
        user: str | None,
        model: str | None = None,
        agent: str | None = None,
    ) -> None:
        mark = (span.start_ns, span.span_id, span.trace_id)
        seen = self.sessions.get(session_id)
        if seen is None:
            seen = self.sessions[session_id] = _Session(mark)
        seen.saw(mark, user, model, agent)

    def _trace_end(self, span: Span, session_id: str, session_key: str) -> tuple[Event, ...]:
        """session.completed when ``span`` is the root of a trace that is its own session."""
        if span.parent_span_id is not None or session_key != "trace_id":
            return ()
        failed = attrs.failed(span)
        return (
            _validate(
                {
                    "type": "session.completed",
                    "event_id": event_id(f"{span.trace_id}/{span.span_id}/session.completed"),
                    "occurred_at": _at(span.end_ns),
                    "session_id": session_id,
                    "status": ("cancelled" if attrs.cancelled(span) else "error") if failed else "completed",
                },
                {"session_id": "trace_id"},
            ),
        )

    def _session_starts(self) -> list[Event]:
        starts: list[Event] = []
        for session_id in sorted(self.sessions):
            seen = self.sessions[session_id]
            model = seen.model or seen.agent_model
            if model is None:
                continue  # no model in this request: another request's session.started names it
            data = {
                "type": "session.started",
                "event_id": event_id(f"session/{session_id}/session.started"),
                "occurred_at": _at(seen.first[0]),
                "session_id": session_id,
                "model": model[3],
                "user_id": seen.user[3] if seen.user else None,
            }
            try:
                starts.append(_validate(data, {"model": "gen_ai.request.model", "user_id": "user.id"}))
            except Refused as refused:
                span = self.spans[(model[2], model[1])]
                self.rejected.append(
                    Rejection(span.span_id, span.trace_id, span.name, refused.field, refused.reason)
                )
        return starts

    def _session(self, span: Span) -> Found:
        """(session id, its attribute): the span's, an ancestor's, the resource's, or the trace id."""
        found = self._above(span, attrs.session, self._sessions_above)
        if found is None:
            found = self._resource(span.resource)[0]
        return found if found is not None else (span.trace_id, "trace_id")

    def _user(self, span: Span) -> str | None:
        found = self._above(span, attrs.user, self._users_above)
        if found is None:
            found = self._resource(span.resource)[1]
        return found[0] if found is not None else None

    def _above(
        self, span: Span, read: Callable[[Mapping[str, Any]], Found | None], memo: dict[Key, Found | None]
    ) -> Found | None:
        """What ``read`` finds on the span or its nearest ancestor in the request that has it
        (memoised along the way: each span of a request is read once)."""
        chain: list[Key] = []
        current = span
        found: Found | None = None
        while True:
            key = (current.trace_id, current.span_id)
            if key in memo:
                found = memo[key]
                break
            chain.append(key)
            try:
                found = read(current.attributes)
            except Refused as refused:
                if current is span:
                    raise
                reason = f"{refused.reason} (on ancestor span {current.span_id})"
                raise Refused(refused.field, reason) from None
            parent = None if current.parent_span_id is None else (current.trace_id, current.parent_span_id)
            if found is not None or parent is None or parent in chain or parent not in self.spans:
                break
            current = self.spans[parent]
        for key in chain:
            memo[key] = found
        return found

    def _resource(self, resource: Mapping[str, Any]) -> tuple[Found | None, Found | None]:
        """The resource's (session, user): read once per resource of the request."""
        cached = self._resources.get(id(resource))
        if cached is None:
            try:
                cached = (attrs.session(resource), attrs.user(resource))
            except Refused as refused:
                raise Refused(f"resource {refused.field}", refused.reason) from None
            self._resources[id(resource)] = cached
        return cached

    # --- which round a tool call belongs to ---------------------------------------------------

    def _round_of_tool(self, span: Span) -> str:
        trace = span.trace_id
        for above in self._ancestors(span):
            if self.roles[(trace, above.span_id)] == attrs.ROUND:
                return entity_id(trace, above.span_id)
        try:
            call = attrs.text(span.attributes, _CALL_ID_KEYS, MAX_ID_LENGTH)
        except Refused:
            call = None  # an id we cannot read ties nothing; the call is still mapped
        if call is not None:
            asked = self._call_index().get((trace, call[0]))
            if asked is not None:
                return entity_id(trace, asked.span_id)
        siblings = self._sibling_index().get((trace, span.parent_span_id), ())
        before = [r for r in siblings if r.end_ns <= span.start_ns]
        if before:
            return entity_id(trace, max(before, key=lambda r: (r.end_ns, r.span_id)).span_id)
        return entity_id(trace, span.parent_span_id or span.span_id)

    def _ancestors(self, span: Span) -> Iterator[Span]:
        """The span's ancestors present in the request, nearest first (a parent cycle ends it)."""
        seen = {span.span_id}
        parent = span.parent_span_id
        while parent is not None and parent not in seen:
            above = self.spans.get((span.trace_id, parent))
            if above is None:
                return
            yield above
            seen.add(parent)
            parent = above.parent_span_id

    def _genai_above(self, span: Span) -> Span | None:
        """The nearest GenAI ancestor of an HTTP span, or None (also when an HTTP span is nearer:
        the outermost HTTP client span is the forward)."""
        for above in self._ancestors(span):
            role = self.roles[(span.trace_id, above.span_id)]
            if role == attrs.HTTP:
                return None
            if role != attrs.NONE:
                return above
        return None

    def _rounds(self) -> Iterator[Span]:
        for key, span in self.spans.items():
            if self.roles[key] == attrs.ROUND:
                yield span

    def _sibling_index(self) -> dict[tuple[str, str | None], list[Span]]:
        if self._siblings is None:
            self._siblings = {}
            for span in self._rounds():
                self._siblings.setdefault((span.trace_id, span.parent_span_id), []).append(span)
        return self._siblings

    def _call_index(self) -> dict[Key, Span]:
        """(trace id, tool call id) -> the earliest round whose answer asked for that call."""
        if self._calls is None:
            self._calls = {}
            for span in self._rounds():
                for call in attrs.tool_call_ids(span.attributes):
                    known = self._calls.get((span.trace_id, call))
                    if known is None or (span.start_ns, span.span_id) < (known.start_ns, known.span_id):
                        self._calls[(span.trace_id, call)] = span
        return self._calls


def _endpoint(a: Mapping[str, Any]) -> tuple[str | None, str]:
    """The forward's endpoint, (text, attribute): ``url.full`` (or the older ``http.url``) without
    its query, fragment and credentials (a query may hold an API key); else ``server.address``
    with ``server.port`` and ``url.path``. Cut to the contract's maximum."""
    for key in ("url.full", "http.url"):
        url = a.get(key)
        if isinstance(url, str) and url:
            try:
                parts = urlsplit(url)
                port = parts.port
            except ValueError:
                continue
            host = parts.hostname or ""
            if ":" in host:
                host = f"[{host}]"
            netloc = f"{host}:{port}" if port else host
            scheme = f"{parts.scheme}://" if parts.scheme else ""
            return f"{scheme}{netloc}{parts.path or '/'}"[:MAX_NAME_LENGTH], key
    host = a.get("server.address", a.get("net.peer.name"))
    if not isinstance(host, str) or not host:
        return None, "url.full"
    port = a.get("server.port", a.get("net.peer.port"))
    path = a.get("url.path", a.get("http.target"))
    path = path.split("?", 1)[0] if isinstance(path, str) and path else "/"
    netloc = f"{host}:{port}" if isinstance(port, int) and port not in (80, 443) else host
    return f"{netloc}{path}"[:MAX_NAME_LENGTH], "server.address"
