"""Random but causally coherent event histories ("as they truly happened"), for property tests.

Times are whole seconds from a small range so that ties of occurred_at are frequent; the
contract's order key decides them. Every completion or compression comes no earlier than the
start it belongs to; sessions restart, rounds get duplicate starts, tool calls restart (even
under another round), forwards restart after completing: every rule of the seed gets exercised.
Contract v1's optional fields are given or left out at random (a restart may change or drop a
user, a provider, a link), so their rules are exercised with the rest.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

from contract.events import (
    Event,
    ForwardCompleted,
    ForwardStarted,
    RoundCompleted,
    RoundCompressed,
    RoundStarted,
    SessionCompleted,
    SessionMessageCount,
    SessionStarted,
    SyncMismatch,
    TokenUsage,
    ToolCompleted,
    ToolStarted,
)

T0 = datetime(2026, 2, 10, 23, 59, 50, tzinfo=UTC)  # near midnight: mismatches span two dates
MODELS = ("gpt-4", "claude-3", "llama")
PROVIDERS = (None, "openai", "anthropic", "aws.bedrock")
USERS = (None, "u1", "u2")
TOOLS = ("read_file", "write_file", "shell")


class _Builder:
    def __init__(self, rng: random.Random, prefix: str) -> None:
        self.rng = rng
        self.prefix = prefix
        self.events: list[Event] = []
        self.n = 0

    def id(self, kind: str) -> str:
        self.n += 1
        return f"{self.prefix}{kind}{self.n}"

    def at(self, not_before: int, spread: int = 3) -> int:
        return not_before + self.rng.randint(0, spread)

    def add(self, cls: Any, second: int, **fields: Any) -> None:
        self.events.append(cls(event_id=self.id("e"), occurred_at=T0 + timedelta(seconds=second), **fields))

    def usage(self) -> TokenUsage:
        rng = self.rng
        p, c = rng.randint(0, 500), rng.randint(0, 500)
        read = rng.choice((None, rng.randint(0, p)))
        write = rng.choice((None, rng.randint(0, p - (read or 0))))
        reasoning = rng.choice((None, rng.randint(0, c)))
        return TokenUsage(
            prompt_tokens=p,
            completion_tokens=c,
            total_tokens=p + c,
            cache_read_tokens=read,
            cache_write_tokens=write,
            reasoning_tokens=reasoning,
        )

    def ttft(self) -> int | None:
        return self.rng.choice((None, self.rng.randint(0, 3000)))


def coherent_history(
    rng: random.Random,
    *,
    sessions: int = 2,
    max_rounds: int = 3,
    max_tools: int = 2,
    forwards: int = 2,
    mismatches: int = 2,
    prefix: str = "",
) -> list[Event]:
    b = _Builder(rng, prefix)
    session_ids = [b.id("s") for _ in range(sessions)]
    all_rounds: list[tuple[str, str, int]] = []
    for sid in session_ids:
        _session(b, sid, max_rounds, max_tools, all_rounds)
    for _ in range(forwards):
        _forward(b, all_rounds)
    for _ in range(mismatches):
        b.add(SyncMismatch, b.at(0, 20), reason=rng.choice(("message_count", "pending_question")))
    return b.events


def _session(
    b: _Builder, sid: str, max_rounds: int, max_tools: int, all_rounds: list[tuple[str, str, int]]
) -> None:
    """One session's start, rounds, message counts and completion (maybe re-opened)."""
    rng = b.rng
    start = b.at(0, 5)
    b.add(SessionStarted, start, session_id=sid, model=rng.choice(MODELS), user_id=rng.choice(USERS))
    last = start
    for _ in range(rng.randint(0, max_rounds)):
        last = max(last, _round(b, sid, last, max_tools, all_rounds))
    for _ in range(rng.choice((0, 1, 2))):
        b.add(SessionMessageCount, b.at(start, 8), session_id=sid, message_count=rng.randint(0, 50))
    if rng.random() < 0.7:
        end = b.at(last, 3)
        b.add(
            SessionCompleted,
            end,
            session_id=sid,
            status=rng.choice(("completed", "completed", "awaiting_response", "error", "cancelled")),
        )
        if rng.random() < 0.3:  # re-opened, with another model (and maybe user)
            b.add(
                SessionStarted,
                b.at(end, 2),
                session_id=sid,
                model=rng.choice(MODELS),
                user_id=rng.choice(USERS),
            )


def _round(b: _Builder, sid: str, last: int, max_tools: int, all_rounds: list[tuple[str, str, int]]) -> int:
    """One round of a session, with its tool calls, compressions and completions: its last second."""
    rng = b.rng
    rid = b.id("r")
    r_start = b.at(last, 2)
    b.add(
        RoundStarted,
        r_start,
        round_id=rid,
        session_id=sid,
        model=rng.choice(MODELS),
        provider=rng.choice(PROVIDERS),
    )
    all_rounds.append((rid, sid, r_start))
    if rng.random() < 0.2:  # a duplicate start (new event id): the first one is kept
        b.add(
            RoundStarted,
            b.at(r_start),
            round_id=rid,
            session_id=sid,
            model=rng.choice(MODELS),
            provider=rng.choice(PROVIDERS),
        )
    t_last = r_start
    for _ in range(rng.randint(0, max_tools)):
        t_last = _tool_call(b, rid, sid, r_start, t_last, all_rounds)
    for _ in range(rng.choice((0, 0, 1, 2))):
        b.add(
            RoundCompressed,
            b.at(r_start, 3),
            round_id=rid,
            session_id=sid,
            tokens_saved=rng.randint(0, 1000),
        )
    completions = rng.choice((0, 1, 1, 1, 2))
    for _ in range(completions):
        b.add(
            RoundCompleted,
            b.at(t_last, 2),
            round_id=rid,
            session_id=sid,
            status=rng.choice(("success", "success", "error", "cancelled")),
            usage=b.usage(),
            prompt_cached_tool_outputs=rng.randint(0, 5),
            error=None if rng.random() < 0.7 else "upstream failed",
            time_to_first_token_ms=b.ttft(),
        )
    return t_last


def _tool_call(
    b: _Builder, rid: str, sid: str, r_start: int, t_last: int, all_rounds: list[tuple[str, str, int]]
) -> int:
    """One tool call of a round (maybe completed, maybe restarted elsewhere): the round's last second."""
    rng = b.rng
    tid = b.id("t")
    t_start = b.at(r_start, 2)
    b.add(
        ToolStarted,
        t_start,
        tool_call_id=tid,
        round_id=rid,
        session_id=sid,
        tool_name=rng.choice(TOOLS),
    )
    t_last = max(t_last, t_start)
    if rng.random() < 0.7:
        t_end = b.at(t_start, 2)
        b.add(
            ToolCompleted,
            t_end,
            tool_call_id=tid,
            round_id=rid,
            session_id=sid,
            success=rng.random() < 0.8,
            error=None if rng.random() < 0.8 else "boom",
        )
        t_last = max(t_last, t_end)
    if rng.random() < 0.15 and all_rounds:  # the seed's DO UPDATE: restart, maybe elsewhere
        o_rid, o_sid, o_start = rng.choice(all_rounds)
        b.add(
            ToolStarted,
            b.at(max(t_last, o_start), 2),
            tool_call_id=tid,
            round_id=o_rid,
            session_id=o_sid,
            tool_name=rng.choice(TOOLS),
        )
    return t_last


def _forward(b: _Builder, all_rounds: list[tuple[str, str, int]]) -> None:
    """One forwarded request: started once or twice (each start maybe linked to a session's round,
    or its session only), each start maybe completed."""
    rng = b.rng
    fid = b.id("f")
    at = b.at(0, 6)
    for _ in range(rng.choice((1, 1, 2))):
        link = rng.choice(all_rounds) if all_rounds and rng.random() < 0.6 else None
        b.add(
            ForwardStarted,
            at,
            forward_id=fid,
            endpoint=rng.choice(("/v1/chat", "/v1/messages")),
            model=rng.choice(MODELS),
            is_stream=rng.random() < 0.5,
            provider=rng.choice(PROVIDERS),
            session_id=link[1] if link else None,
            round_id=link[0] if link and rng.random() < 0.7 else None,
        )
        if rng.random() < 0.75:
            at = b.at(at, 3)
            b.add(
                ForwardCompleted,
                at,
                forward_id=fid,
                status=rng.choice(("success", "error", "timeout")),
                status_code=rng.choice((None, 200, 500)),
                usage=b.usage() if rng.random() < 0.6 else None,
                error=None if rng.random() < 0.7 else "timeout",
                time_to_first_token_ms=b.ttft(),
            )
        at = b.at(at, 2)


def deliveries(rng: random.Random, history: list[Event], max_copies: int = 3) -> list[Event]:
    """The history as a queue might deliver it: shuffled, with some events repeated."""
    delivered = [ev for ev in history for _ in range(rng.choice([1] * 4 + list(range(1, max_copies + 1))))]
    rng.shuffle(delivered)
    return delivered


def split(rng: random.Random, events: list[Event], max_batches: int = 5) -> list[list[Event]]:
    """Cut a delivery into 1..max_batches consecutive batches of random sizes."""
    if not events:
        return []
    cuts = sorted(rng.sample(range(1, len(events)), k=min(len(events) - 1, rng.randint(0, max_batches - 1))))
    bounds = [0, *cuts, len(events)]
    return [events[a:b] for a, b in pairwise(bounds)]
