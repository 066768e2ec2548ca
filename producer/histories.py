"""Realistic agent histories, for the demo, the benchmarks and the tests. Pure: no I/O.

:func:`agent_calls` is a generator of Publisher calls ``(method, kwargs)`` with causally
coherent histories: per session, session.started, then rounds (round.started; tool.started and
tool.completed inside; sometimes round.compressed; round.completed with usage), message counts,
awaiting marks, then session.completed (some error, cancelled or awaiting_response); forwards
(started, then completed) on their own; now and then a sync.mismatch. Several sessions of one
agent interleave. :func:`agent_events` turns the calls into contract events (no Redis needed);
producer/simulate.py makes the calls on Publishers.
"""

from __future__ import annotations

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

MODELS = ("gpt-4o", "gpt-4o-mini", "claude-sonnet-4", "claude-haiku-4", "gemini-2.5-pro", "llama-3.3-70b")
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


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def session_calls(rng: random.Random) -> Iterator[Call]:
    """One session's calls, start to completion."""
    session_id, model = _uuid(rng), rng.choice(MODELS)
    fate = rng.random()
    status = (
        "error" if fate < 0.05 else "cancelled" if fate < 0.08 else "awaiting" if fate < 0.28 else "completed"
    )
    yield "session_started", {"session_id": session_id, "model": model}
    rounds = rng.randint(1, 8)
    messages = 1
    for index in range(rounds):
        last = index == rounds - 1
        yield from _round(
            rng,
            session_id,
            model,
            "error"
            if last and status == "error"
            else "cancelled"
            if last and status == "cancelled"
            else None,
        )
        messages += 2
        yield "session_message_count", {"session_id": session_id, "message_count": messages}
        if status == "awaiting" and index == rounds // 2 and not last:
            yield "session_awaiting", {"session_id": session_id}  # asks; the user answers later
            yield "session_resumed", {"session_id": session_id}
    if status == "awaiting":
        yield "session_awaiting", {"session_id": session_id}
    final = {"awaiting": "awaiting_response"}.get(status, status)
    yield "session_completed", {"session_id": session_id, "status": final}


def _round(rng: random.Random, session_id: str, model: str, outcome: str | None) -> Iterator[Call]:
    round_id = _uuid(rng)
    yield "round_started", {"round_id": round_id, "session_id": session_id, "model": model}
    tools = rng.choices((0, 1, 2, 3, 4), weights=(25, 35, 20, 12, 8))[0]
    for _ in range(tools):
        call_id, ok = _uuid(rng), rng.random() > 0.08
        yield (
            "tool_started",
            {
                "tool_call_id": call_id,
                "round_id": round_id,
                "session_id": session_id,
                "tool_name": rng.choice(TOOLS),
            },
        )
        yield (
            "tool_completed",
            {
                "tool_call_id": call_id,
                "round_id": round_id,
                "session_id": session_id,
                "success": ok,
                "error": None if ok else rng.choice(TOOL_ERRORS),
            },
        )
    if rng.random() < 0.1:
        yield (
            "round_compressed",
            {"round_id": round_id, "session_id": session_id, "tokens_saved": rng.randint(2_000, 80_000)},
        )
    status = outcome or ("error" if rng.random() < 0.03 else "success")
    prompt, completion = rng.randint(800, 120_000), rng.randint(0 if status != "success" else 20, 4_000)
    yield (
        "round_completed",
        {
            "round_id": round_id,
            "session_id": session_id,
            "status": status,
            "usage": (prompt, completion, prompt + completion),
            "prompt_cached_tool_outputs": rng.randint(0, tools),
            "error": rng.choice(ROUND_ERRORS) if status == "error" else None,
        },
    )


def forward_calls(rng: random.Random) -> Iterator[Call]:
    forward_id, is_stream = _uuid(rng), rng.random() < 0.7
    yield (
        "forward_started",
        {
            "forward_id": forward_id,
            "endpoint": rng.choice(ENDPOINTS),
            "model": rng.choice(MODELS),
            "is_stream": is_stream,
        },
    )
    fate = rng.random()
    if fate < 0.04:
        yield (
            "forward_completed",
            {
                "forward_id": forward_id,
                "status": "timeout",
                "status_code": None,
                "usage": None,
                "error": "ReadTimeout: upstream did not answer in 60 s",
            },
        )
    elif fate < 0.1:
        code = rng.choice((400, 429, 500, 502, 503))
        yield (
            "forward_completed",
            {
                "forward_id": forward_id,
                "status": "error",
                "status_code": code,
                "usage": None,
                "error": f"upstream answered {code}",
            },
        )
    else:
        prompt, completion = rng.randint(100, 50_000), rng.randint(1, 4_000)
        yield (
            "forward_completed",
            {
                "forward_id": forward_id,
                "status": "success",
                "status_code": 200,
                "usage": (prompt, completion, prompt + completion),
                "error": None,
            },
        )


def agent_calls(
    rng: random.Random, sessions: int, concurrency: int = 3, stop: Callable[[], bool] | None = None
) -> Iterator[Call]:
    """One agent's calls for ``sessions`` sessions, up to ``concurrency`` of them interleaved,
    with about one forward per session and a sync.mismatch about every 500 calls. Once ``stop()``
    is true no new session starts; those in flight run to their end."""
    live: list[Iterator[Call]] = []
    started = 0
    while live or started < sessions:
        if stop is not None and started < sessions and stop():
            sessions = started
        while started < sessions and len(live) < concurrency:
            live.append(session_calls(rng))
            started += 1
            if rng.random() < 0.9:
                live.append(forward_calls(rng))
        if rng.random() < 0.002:
            yield "sync_mismatch", {"reason": rng.choice(MISMATCHES)}
        current = rng.randrange(len(live))
        call = next(live[current], None)
        if call is None:
            live.pop(current)
        else:
            yield call


def agent_events(
    rng: random.Random, sessions: int, concurrency: int = 3, start: datetime | None = None
) -> Iterator[Event]:
    """Contract events for :func:`agent_calls`, with UUIDv7 ids and times ~50 ms apart."""
    now = start or datetime.now(UTC)
    ids = Encoder(Keys(), random.Random(rng.getrandbits(64)))
    for method, kwargs in agent_calls(rng, sessions, concurrency):
        event_type = EVENT_TYPE_OF.get(method)
        if event_type is None:
            continue  # a liveness hint, not an event
        now += timedelta(microseconds=int(rng.expovariate(1 / 50_000)) + 1)
        data = {"type": event_type, **kwargs}
        for name in ("usage",):
            if isinstance(data.get(name), tuple):
                prompt, completion, total = data[name]
                data[name] = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": total}
        stamp = int(now.timestamp() * 1_000_000) * 1000
        yield codec.validate({**data, "event_id": ids.uuid7(stamp), "occurred_at": now})
