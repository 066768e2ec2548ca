"""Pure merge logic: a batch of events becomes one row per entity, merged by the convergence rules.

PostgreSQL rejects a multi-row upsert that touches one key twice, so a batch's events are first
reduced per key here, with the same rules the SQL applies between a batch row and the stored
row (worker/engine/sql.py). Every rule is a register keyed by the event's order key
(occurred_at, lifecycle rank, event_id), so the reduction is commutative, associative and
idempotent: the result does not depend on the order or repetition of the events.

- session: started_at = earliest start; model and user_id = latest start's; status/completed_at =
  latest of starts (running) and completions; message_count = latest count.
- round: start fields (model, provider) = earliest start (the seed's DO NOTHING keeps the
  first); completion fields (status, usage with its parts, time to first token, ...) = latest
  completion; compressions are counted once per event_id.
- tool call: start fields = latest start (the seed's DO UPDATE); completion = latest completion.
- forward: start fields (with provider and the session and round links) = latest start;
  completion (with the usage parts and time to first token) = latest completion that is later
  than the latest start (a later start resets the completion, as the seed's DO UPDATE does).

An optional field travels with its event's group: the event that sets the group sets it, to
None when that event left it out.
- sync mismatch: counted once per event_id into (reason, UTC date).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
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
    ToolCompleted,
    ToolStarted,
    to_utc,
)


@dataclass(slots=True)
class SessionRow:
    session_id: str
    updated_at: datetime
    started_at: datetime | None = None
    model: str | None = None
    user_id: str | None = None
    model_version: str | None = None
    status: str | None = None
    completed_at: datetime | None = None
    status_version: str | None = None
    message_count: int | None = None
    message_count_version: str | None = None


@dataclass(slots=True)
class RoundRow:
    round_id: str
    session_id: str  # the start's; before a start, the first event's (ids on other events must agree)
    start_version: str | None = None
    model: str | None = None
    started_at: datetime | None = None
    completion_version: str | None = None
    completed_at: datetime | None = None
    status: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None
    prompt_cached_tool_outputs: int | None = None
    error: str | None = None
    provider: str | None = None
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None
    reasoning_tokens: int | None = None
    time_to_first_token_ms: int | None = None


@dataclass(slots=True)
class ToolRow:
    tool_call_id: str
    round_id: str
    session_id: str  # the start's; before a start, the first event's (ids on other events must agree)
    start_version: str | None = None
    tool_name: str | None = None
    started_at: datetime | None = None
    completion_version: str | None = None
    completed_at: datetime | None = None
    success: bool | None = None
    error: str | None = None


@dataclass(slots=True)
class ForwardRow:
    forward_id: str
    updated_at: datetime
    start_version: str | None = None
    endpoint: str | None = None
    model: str | None = None
    is_stream: bool | None = None
    started_at: datetime | None = None
    completion_version: str | None = None
    completed_at: datetime | None = None
    status_code: int | None = None
    status: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None
    error: str | None = None
    provider: str | None = None
    session_id: str | None = None
    round_id: str | None = None
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None
    reasoning_tokens: int | None = None
    time_to_first_token_ms: int | None = None


@dataclass(slots=True)
class Compression:
    event_id: str
    round_id: str
    tokens_saved: int


@dataclass(slots=True)
class Mismatch:
    event_id: str
    reason: str
    mismatch_date: date
    occurred_at: datetime


@dataclass
class Plan:
    """One batch, reduced to at most one row per entity."""

    sessions: dict[str, SessionRow] = field(default_factory=dict)
    rounds: dict[str, RoundRow] = field(default_factory=dict)
    tools: dict[str, ToolRow] = field(default_factory=dict)
    forwards: dict[str, ForwardRow] = field(default_factory=dict)
    compressions: dict[str, Compression] = field(default_factory=dict)
    mismatches: dict[str, Mismatch] = field(default_factory=dict)
    events: int = 0

    def touch_session(self, session_id: str, at: datetime) -> SessionRow:
        row = self.sessions.get(session_id)
        if row is None:
            row = self.sessions[session_id] = SessionRow(session_id, at)
        elif at > row.updated_at:
            row.updated_at = at
        return row


def plan(events: Sequence[Event]) -> Plan:
    """Reduce a batch of validated events to one merged row per entity."""
    p = Plan(events=len(events))
    for ev in events:
        _MERGERS[ev.type](p, ev, ev.order_key)
    # A forward's completion that is not later than its latest start can never take effect.
    for fwd in p.forwards.values():
        if _older(fwd.completion_version, fwd.start_version):
            _clear_forward_completion(fwd)
    return p


def _newer(candidate: str, current: str | None) -> bool:
    return current is None or candidate > current


def _older(candidate: str | None, current: str | None) -> bool:
    return candidate is not None and current is not None and candidate <= current


def _session_started(p: Plan, ev: SessionStarted, key: str) -> None:
    row = p.touch_session(ev.session_id, ev.occurred_at)
    if row.started_at is None or ev.occurred_at < row.started_at:
        row.started_at = ev.occurred_at
    if _newer(key, row.model_version):
        row.model, row.user_id, row.model_version = ev.model, ev.user_id, key
    if _newer(key, row.status_version):
        row.status, row.completed_at, row.status_version = "running", None, key


def _session_completed(p: Plan, ev: SessionCompleted, key: str) -> None:
    row = p.touch_session(ev.session_id, ev.occurred_at)
    if _newer(key, row.status_version):
        row.status, row.completed_at, row.status_version = ev.status, ev.occurred_at, key


def _session_message_count(p: Plan, ev: SessionMessageCount, key: str) -> None:
    row = p.touch_session(ev.session_id, ev.occurred_at)
    if _newer(key, row.message_count_version):
        row.message_count, row.message_count_version = ev.message_count, key


def _round(p: Plan, round_id: str, session_id: str) -> RoundRow:
    row = p.rounds.get(round_id)
    if row is None:
        row = p.rounds[round_id] = RoundRow(round_id, session_id)
    return row


def _round_started(p: Plan, ev: RoundStarted, key: str) -> None:
    p.touch_session(ev.session_id, ev.occurred_at)
    row = _round(p, ev.round_id, ev.session_id)
    if row.start_version is None or key < row.start_version:
        row.start_version, row.session_id, row.model, row.started_at = (
            key,
            ev.session_id,
            ev.model,
            ev.occurred_at,
        )
        row.provider = ev.provider


def _round_completed(p: Plan, ev: RoundCompleted, key: str) -> None:
    p.touch_session(ev.session_id, ev.occurred_at)
    row = _round(p, ev.round_id, ev.session_id)
    if _newer(key, row.completion_version):
        row.completion_version = key
        row.completed_at = ev.occurred_at
        row.status = ev.status
        row.prompt_tokens = ev.usage.prompt_tokens
        row.completion_tokens = ev.usage.completion_tokens
        row.total_tokens = ev.usage.total_tokens
        row.prompt_cached_tool_outputs = ev.prompt_cached_tool_outputs
        row.error = ev.error
        row.cache_read_tokens = ev.usage.cache_read_tokens
        row.cache_write_tokens = ev.usage.cache_write_tokens
        row.reasoning_tokens = ev.usage.reasoning_tokens
        row.time_to_first_token_ms = ev.time_to_first_token_ms


def _round_compressed(p: Plan, ev: RoundCompressed, key: str) -> None:
    p.touch_session(ev.session_id, ev.occurred_at)
    _round(p, ev.round_id, ev.session_id)
    p.compressions[ev.event_id] = Compression(ev.event_id, ev.round_id, ev.tokens_saved)


def _tool(p: Plan, ev: ToolStarted | ToolCompleted) -> ToolRow:
    row = p.tools.get(ev.tool_call_id)
    if row is None:
        row = p.tools[ev.tool_call_id] = ToolRow(ev.tool_call_id, ev.round_id, ev.session_id)
    return row


def _tool_started(p: Plan, ev: ToolStarted, key: str) -> None:
    p.touch_session(ev.session_id, ev.occurred_at)
    row = _tool(p, ev)
    if _newer(key, row.start_version):
        row.start_version, row.tool_name, row.started_at = key, ev.tool_name, ev.occurred_at
        row.round_id, row.session_id = ev.round_id, ev.session_id


def _tool_completed(p: Plan, ev: ToolCompleted, key: str) -> None:
    p.touch_session(ev.session_id, ev.occurred_at)
    row = _tool(p, ev)
    if _newer(key, row.completion_version):
        row.completion_version, row.completed_at = key, ev.occurred_at
        row.success, row.error = ev.success, ev.error


def _forward(p: Plan, forward_id: str, at: datetime) -> ForwardRow:
    row = p.forwards.get(forward_id)
    if row is None:
        row = p.forwards[forward_id] = ForwardRow(forward_id, at)
    elif at > row.updated_at:
        row.updated_at = at
    return row


def _forward_started(p: Plan, ev: ForwardStarted, key: str) -> None:
    row = _forward(p, ev.forward_id, ev.occurred_at)
    if _newer(key, row.start_version):
        row.start_version, row.endpoint, row.model = key, ev.endpoint, ev.model
        row.is_stream, row.started_at = ev.is_stream, ev.occurred_at
        row.provider, row.session_id, row.round_id = ev.provider, ev.session_id, ev.round_id


def _forward_completed(p: Plan, ev: ForwardCompleted, key: str) -> None:
    row = _forward(p, ev.forward_id, ev.occurred_at)
    if _newer(key, row.completion_version):
        usage = ev.usage
        row.completion_version, row.completed_at = key, ev.occurred_at
        row.status_code, row.status, row.error = ev.status_code, ev.status, ev.error
        row.prompt_tokens = usage.prompt_tokens if usage else None
        row.completion_tokens = usage.completion_tokens if usage else None
        row.total_tokens = usage.total_tokens if usage else None
        row.cache_read_tokens = usage.cache_read_tokens if usage else None
        row.cache_write_tokens = usage.cache_write_tokens if usage else None
        row.reasoning_tokens = usage.reasoning_tokens if usage else None
        row.time_to_first_token_ms = ev.time_to_first_token_ms


def _clear_forward_completion(row: ForwardRow) -> None:
    row.completion_version = row.completed_at = row.status_code = row.status = row.error = None
    row.prompt_tokens = row.completion_tokens = row.total_tokens = None
    row.cache_read_tokens = row.cache_write_tokens = row.reasoning_tokens = row.time_to_first_token_ms = None


def _sync_mismatch(p: Plan, ev: SyncMismatch, key: str) -> None:
    p.mismatches[ev.event_id] = Mismatch(
        ev.event_id, ev.reason, to_utc(ev.occurred_at).date(), ev.occurred_at
    )


_MERGERS: dict[str, Any] = {
    "session.started": _session_started,
    "session.completed": _session_completed,
    "session.message_count": _session_message_count,
    "round.started": _round_started,
    "round.completed": _round_completed,
    "round.compressed": _round_compressed,
    "tool.started": _tool_started,
    "tool.completed": _tool_completed,
    "forward.started": _forward_started,
    "forward.completed": _forward_completed,
    "sync.mismatch": _sync_mismatch,
}
