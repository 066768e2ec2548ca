"""Realistic agent histories, for the demo, the benchmarks, the tests. Pure: no I/O.

:func:`agent_calls` is a generator of Publisher calls ``(method, kwargs)`` with causally
coherent histories: per session, session.started, then rounds (round.started; tool.started and
tool.completed inside; sometimes round.compressed; round.completed with usage), message counts,
awaiting marks, then session.completed (some error, cancelled or awaiting_response); forwards
(started, then completed) on their own; now and then a sync.mismatch. Several sessions of one
agent interleave, in time order: every call has its simulated time (:func:`timed_calls`), drawn
from plausible distributions (rounds of seconds: the model's latency, its tool calls, then the
answer at 60-120 tokens/s; tools of milliseconds for files to seconds for commands and web
requests, tens of seconds for a question to the user; a timeout as long as its message says).
Each model has its provider; most rounds stream (their time to first token is the model's
latency); after a session's first round most of the prompt is read from the provider's cache
(Anthropic's models also report what they wrote to it); reasoning models (o3, o4-mini) spend much
of their completion on reasoning; sessions belong to a few hundred users, some far busier than
others; about half the forwards are made for a session.
:func:`agent_events` turns the calls into contract events (no Redis needed); producer/simulate.py
makes the calls on Publishers.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from contract import codec
from contract.events import Event
from contract.keys import Keys
from producer.wire import WIRE_TYPES, Encoder

Call = tuple[str, dict[str, Any]]

MODELS = (
    "gpt-4o",
    "gpt-4o-mini",
    "o3",
    "o4-mini",
    "claude-sonnet-4",
    "claude-haiku-4",
    "gemini-2.5-pro",
    "llama-3.3-70b",
)
#: Each model's provider, as OpenTelemetry's gen_ai.provider.name.
PROVIDERS = {
    "gpt-4o": "openai", "gpt-4o-mini": "openai", "o3": "openai", "o4-mini": "openai",
    "claude-sonnet-4": "anthropic", "claude-haiku-4": "anthropic", "gemini-2.5-pro": "gcp.gemini",
    "llama-3.3-70b": "aws.bedrock",
}  # fmt: skip
REASONING_MODELS = frozenset({"o3", "o4-mini"})
USERS = tuple(f"user-{n:03d}" for n in range(300))
TOOLS = (
    "read_file",
    "write_file",
    "edit_file",
    "bash",
    "grep",
    "glob",
    "web_fetch",
    "web_search",
    "list_dir",
    "python",
    "sql_query",
    "ask_user",
)
ENDPOINTS = ("/v1/chat/completions", "/v1/messages", "/v1/responses", "/v1/embeddings")
TOOL_ERRORS = (
    "FileNotFoundError: [Errno 2] No such file or directory: 'src/app.py'",
    "TimeoutError: command timed out after 120 s",
    "PermissionError: [Errno 13] Permission denied",
    "HTTPError: 404 Not Found",
    "exit status 1: tests failed",
)
ROUND_ERRORS = (
    "RateLimitError: 429 Too Many Requests",
    "APIError: 500 Internal Server Error",
    "ContextWindowExceeded: prompt is 201,334 tokens, limit 200,000",
)
MISMATCHES = (
    "message_count differs from the agent's transcript",
    "round missing in the upstream log",
    "usage totals differ from the provider's invoice",
)

#: Publisher method -> contract event type, for the calls that are events.
EVENT_TYPE_OF: dict[str, str] = {w.type.replace(".", "_"): w.type for w in WIRE_TYPES}


#: Median seconds a tool call takes (lognormal around it): file operations are milliseconds,
#: commands and web requests seconds, a question to the user tens of seconds.
TOOL_SECONDS = {
    "read_file": 0.02, "write_file": 0.03, "edit_file": 0.04, "bash": 1.5, "grep": 0.12, "glob": 0.03,
    "web_fetch": 0.9, "web_search": 1.6, "list_dir": 0.01, "python": 2.0, "sql_query": 0.25, "ask_user": 25.0,
}  # fmt: skip
TOOL_TIMEOUT = (TOOL_ERRORS[1], 120.0)  # the timeout error takes exactly as long as it says
FORWARD_TIMEOUT = 60.0

#: A timed call: seconds since the agent's start, the Publisher method, its arguments.
Timed = tuple[float, str, dict[str, Any]]


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _around(rng: random.Random, median: float, sigma: float = 0.6) -> float:
    """A lognormal duration in seconds around ``median`` (most near it, a long tail above)."""
    return median * math.exp(rng.gauss(0.0, sigma))


def session_calls(rng: random.Random, at: float = 0.0) -> Iterator[Timed]:
    """One session's calls, start to completion, from ``at`` seconds: rounds of seconds (the
    model's latency, its tools, the generation of its answer), a user's answer tens of seconds
    after a question."""
    session_id, model = _uuid(rng), rng.choice(MODELS)
    fate = rng.random()
    status = (
        "error" if fate < 0.05 else "cancelled" if fate < 0.08 else "awaiting" if fate < 0.28 else "completed"
    )
    # Many users, a few of them much busier than the rest.
    user = (
        rng.choice(USERS)
        if rng.random() < 0.6
        else USERS[min(int(rng.paretovariate(1.0)) - 1, len(USERS) - 1)]
    )
    yield at, "session_started", {"session_id": session_id, "model": model, "user_id": user}
    rounds = rng.randint(1, 8)
    messages = 1
    for index in range(rounds):
        last = index == rounds - 1
        outcome = status if last and status in ("error", "cancelled") else None
        calls = list(_round(rng, session_id, model, outcome, index, at + _around(rng, 0.3)))
        yield from calls
        at = calls[-1][0] + 0.001
        messages += 2
        yield at, "session_message_count", {"session_id": session_id, "message_count": messages}
        if status == "awaiting" and index == rounds // 2 and not last:
            yield at, "session_awaiting", {"session_id": session_id}  # asks; the user answers later
            at += _around(rng, 30.0, 1.0)
            yield at, "session_resumed", {"session_id": session_id}
    if status == "awaiting":
        yield at, "session_awaiting", {"session_id": session_id}
    final = {"awaiting": "awaiting_response"}.get(status, status)
    yield at + 0.001, "session_completed", {"session_id": session_id, "status": final}


def _round(
    rng: random.Random, session_id: str, model: str, outcome: str | None, index: int, at: float
) -> Iterator[Timed]:
    round_id = _uuid(rng)
    ids = {"round_id": round_id, "session_id": session_id}
    yield at, "round_started", {**ids, "model": model, "provider": PROVIDERS[model]}
    status = outcome or ("error" if rng.random() < 0.03 else "success")
    first_token = _around(rng, 1.2, 0.5)  # the model's latency: time to the first token
    at += first_token
    tools = 0 if status == "error" else rng.choices((0, 1, 2, 3, 4), weights=(25, 35, 20, 12, 8))[0]
    for _ in range(tools):
        call_id, name, ok = _uuid(rng), rng.choice(TOOLS), rng.random() > 0.08
        error = None if ok else rng.choice(TOOL_ERRORS)
        yield at, "tool_started", {**ids, "tool_call_id": call_id, "tool_name": name}
        at += TOOL_TIMEOUT[1] if error == TOOL_TIMEOUT[0] else _around(rng, TOOL_SECONDS[name], 0.8)
        yield at, "tool_completed", {**ids, "tool_call_id": call_id, "success": ok, "error": error}
        at += _around(rng, 0.8, 0.5)  # the model reads the result
    if rng.random() < 0.1:
        at += _around(rng, 2.0, 0.4)
        yield at, "round_compressed", {**ids, "tokens_saved": rng.randint(2_000, 80_000)}
    # The context grows round by round; answers are mostly short, sometimes long.
    prompt = min(int((3_000 + index * 9_000) * _around(rng, 1.0, 0.3)), 190_000)
    completion = 0 if status == "error" else min(int(_around(rng, 400, 0.9)) + 1, 8_000)
    if model in REASONING_MODELS and completion:
        completion += int(_around(rng, 1_200, 0.8))  # thinking first
    at += completion / rng.uniform(60, 120) + 0.05  # generation at 60-120 tokens/s
    streamed = status != "error" and rng.random() < 0.85
    yield (
        at,
        "round_completed",
        {
            **ids,
            "status": status,
            "usage": usage(rng, model, prompt, completion, cached=index > 0),
            "prompt_cached_tool_outputs": rng.randint(0, tools),
            "error": rng.choice(ROUND_ERRORS) if status == "error" else None,
            "time_to_first_token_ms": round(first_token * 1000) if streamed else None,
        },
    )


def usage(rng: random.Random, model: str, prompt: int, completion: int, *, cached: bool) -> dict[str, int]:
    """Token counts as the model's provider reports them, as the contract counts them: the cache
    parts inside the prompt tokens, the reasoning inside the completion tokens."""
    out = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
    provider = PROVIDERS[model]
    if provider in ("openai", "anthropic", "gcp.gemini"):  # they report cache reads (0 on a miss)
        hit = cached and rng.random() < 0.85
        out["cache_read_tokens"] = int(prompt * rng.uniform(0.55, 0.95)) // 128 * 128 if hit else 0
    if provider == "anthropic":  # the part of the prompt written to the cache for the next round
        out["cache_write_tokens"] = int((prompt - out["cache_read_tokens"]) * rng.uniform(0.5, 1.0))
    if provider == "openai":
        reasoning = model in REASONING_MODELS and completion > 0
        out["reasoning_tokens"] = int(completion * rng.uniform(0.4, 0.85)) if reasoning else 0
    return out


def forward_calls(rng: random.Random, at: float = 0.0, session_id: str | None = None) -> Iterator[Timed]:
    """One forwarded request, made for ``session_id`` when given."""
    forward_id, is_stream, model = _uuid(rng), rng.random() < 0.7, rng.choice(MODELS)
    started = {"forward_id": forward_id, "endpoint": rng.choice(ENDPOINTS), "model": model}
    link = {"session_id": session_id} if session_id else {}
    yield at, "forward_started", {**started, "is_stream": is_stream, "provider": PROVIDERS[model], **link}
    fate = rng.random()
    if fate < 0.04:
        yield (
            at + FORWARD_TIMEOUT,
            "forward_completed",
            {"forward_id": forward_id, "status": "timeout", "status_code": None, "usage": None,
             "error": "ReadTimeout: upstream did not answer in 60 s"},
        )  # fmt: skip
    elif fate < 0.1:
        code = rng.choice((400, 429, 500, 502, 503))
        yield (
            at + _around(rng, 0.3, 0.8),
            "forward_completed",
            {"forward_id": forward_id, "status": "error", "status_code": code, "usage": None,
             "error": f"upstream answered {code}"},
        )  # fmt: skip
    else:
        prompt, completion = rng.randint(100, 50_000), min(int(_around(rng, 300, 0.9)) + 1, 4_000)
        first_token = _around(rng, 0.6)
        yield (
            at + first_token + completion / rng.uniform(60, 120),
            "forward_completed",
            {"forward_id": forward_id, "status": "success", "status_code": 200,
             "usage": usage(rng, model, prompt, completion, cached=rng.random() < 0.5), "error": None,
             "time_to_first_token_ms": round(first_token * 1000) if is_stream else None},
        )  # fmt: skip


def timed_calls(
    rng: random.Random, sessions: int, concurrency: int = 3, stop: Callable[[], bool] | None = None
) -> Iterator[Timed]:
    """One agent's calls in time order for ``sessions`` sessions, up to ``concurrency`` at once
    (a new one starting a few seconds after one ends), with about one forward per session and a
    sync.mismatch about every 500 calls. Once ``stop()`` is true no new session starts; those in
    flight run to their end."""
    live: list[tuple[float, int, Timed, Iterator[Timed]]] = []
    order = itertools.count()
    started = 0
    now = 0.0

    def begin(source: Iterator[Timed]) -> None:
        first = next(source, None)
        if first is not None:
            heapq.heappush(live, (first[0], next(order), first, source))

    while live or started < sessions:
        if stop is not None and started < sessions and stop():
            sessions = started
        while started < sessions and len(live) < concurrency:
            at = now + (rng.uniform(0.5, 8.0) if started >= concurrency else rng.uniform(0, 2.0))
            session = session_calls(rng, at)
            first = next(session)  # session.started: its id, for the forwards made for it
            heapq.heappush(live, (first[0], next(order), first, session))
            started += 1
            if rng.random() < 0.9:
                linked = first[2]["session_id"] if rng.random() < 0.5 else None
                begin(forward_calls(rng, at + rng.uniform(0, 20.0), linked))
        if not live:
            break
        now, _, call, source = heapq.heappop(live)
        if rng.random() < 0.002:
            yield now, "sync_mismatch", {"reason": rng.choice(MISMATCHES)}
        yield call
        begin(source)


def agent_calls(
    rng: random.Random,
    sessions: int,
    concurrency: int = 3,
    stop: Callable[[], bool] | None = None,
    start: datetime | None = None,
) -> Iterator[Call]:
    """:func:`timed_calls` as Publisher calls. With ``start``, each event call carries its
    ``occurred_at`` (and an awaiting mark its ``since``) on the timeline from ``start``; without,
    the Publisher stamps them when they are made."""
    for at, method, kwargs in timed_calls(rng, sessions, concurrency, stop):
        if start is not None:
            when = start + timedelta(seconds=at)
            if method in EVENT_TYPE_OF:
                kwargs = {**kwargs, "occurred_at": when}
            elif method == "session_awaiting":
                kwargs = {**kwargs, "since": when.timestamp()}
        yield method, kwargs


def agent_events(
    rng: random.Random, sessions: int, concurrency: int = 3, start: datetime | None = None
) -> Iterator[Event]:
    """Contract events for :func:`agent_calls` on its timeline from ``start`` (default now), with
    UUIDv7 ids from their times."""
    ids = Encoder(Keys(), random.Random(rng.getrandbits(64)))
    for method, kwargs in agent_calls(rng, sessions, concurrency, start=start or datetime.now(UTC)):
        event_type = EVENT_TYPE_OF.get(method)
        if event_type is None:
            continue  # a liveness hint, not an event
        data = {"type": event_type, **kwargs}
        if isinstance(data.get("usage"), tuple):
            prompt, completion, total = data["usage"]
            data["usage"] = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": total}
        stamp = int(data["occurred_at"].timestamp() * 1_000_000) * 1000
        yield codec.validate({**data, "event_id": ids.uuid7(stamp)})
