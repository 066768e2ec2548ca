"""The apply engine: a batch of validated events into PostgreSQL, in one transaction.

Knows nothing of Redis. Idempotent and order-independent (see worker/merge.py for the rules and
worker/sql.py for how concurrent appliers avoid deadlocks and lost updates).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Sequence

import psycopg

from contract.events import Event
from worker import sql
from worker.errors import translate
from worker.merge import Plan, plan

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Applied:
    """What one batch touched (rows, not events: a batch is merged per key first)."""

    events: int
    sessions: int
    rounds: int
    tools: int
    forwards: int
    counters: int


def apply_events(conn: psycopg.Connection[Any], events: Sequence[Event]) -> Applied:
    """Apply ``events`` in one transaction and refresh the touched sessions' aggregates in it.

    Raises worker.errors.TransientError (retry the whole batch) or PermanentError (the batch
    holds something PostgreSQL refuses). Nothing is committed when it raises.
    """
    p = plan(events)
    try:
        with conn.transaction(), conn.pipeline():
            _execute(conn, p)
    except psycopg.Error as exc:
        raise translate(exc) from exc
    return Applied(
        events=p.events,
        sessions=len(p.sessions),
        rounds=len(p.rounds),
        tools=len(p.tools),
        forwards=len(p.forwards),
        counters=len(p.compressions) + len(p.mismatches),
    )


def _execute(conn: psycopg.Connection[Any], p: Plan) -> None:
    cur = conn.cursor()
    # Lock order: rounds, tool calls, counter events and mismatch rows, forwards, sessions.
    if p.rounds:
        cur.execute(sql.LOCK_ROUNDS, {"ids": sorted(p.rounds)})
    if p.tools:
        cur.execute(sql.LOCK_TOOLS, {"ids": sorted(p.tools)})
    if p.mismatches:
        cur.execute(sql.APPLY_MISMATCHES, _mismatch_params(p))
    if p.forwards:
        cur.execute(sql.APPLY_FORWARDS, _forward_params(p))
    if p.sessions or p.rounds or p.tools:
        cur.execute(sql.APPLY_ROUNDS_TOOLS_SESSIONS, _main_params(p))


def _columns(rows: Any, names: Sequence[str], prefix: str = "") -> dict[str, list[Any]]:
    rows = list(rows)
    return {prefix + name: [getattr(row, name) for row in rows] for name in names}


_ROUND_COLUMNS = (
    "round_id", "session_id", "start_version", "model", "started_at", "completion_version",
    "completed_at", "status", "prompt_tokens", "completion_tokens", "total_tokens",
    "prompt_cached_tool_outputs", "error",
)
_TOOL_COLUMNS = (
    "tool_call_id", "round_id", "session_id", "start_version", "tool_name", "started_at",
    "completion_version", "completed_at", "success", "error",
)
_SESSION_COLUMNS = (
    "session_id", "started_at", "model", "model_version", "status", "completed_at", "status_version",
    "message_count", "message_count_version", "updated_at",
)
_FORWARD_COLUMNS = (
    "forward_id", "start_version", "endpoint", "model", "is_stream", "started_at", "completion_version",
    "completed_at", "status_code", "status", "prompt_tokens", "completion_tokens", "total_tokens",
    "error", "updated_at",
)


def _main_params(p: Plan) -> dict[str, list[Any]]:
    params = _columns(p.rounds.values(), _ROUND_COLUMNS, "r_")
    params.update(_columns(p.compressions.values(), ("event_id", "round_id", "tokens_saved"), "c_"))
    params.update(_columns(p.tools.values(), _TOOL_COLUMNS, "t_"))
    params.update(_columns(p.sessions.values(), _SESSION_COLUMNS, "s_"))
    return params


def _forward_params(p: Plan) -> dict[str, list[Any]]:
    return _columns(p.forwards.values(), _FORWARD_COLUMNS)


def _mismatch_params(p: Plan) -> dict[str, list[Any]]:
    return _columns(p.mismatches.values(), ("event_id", "reason", "mismatch_date", "occurred_at"))
