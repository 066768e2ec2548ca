"""The apply engine: a batch of validated events into PostgreSQL, in one transaction.

Knows nothing of Redis. Idempotent and order-independent (see worker/merge.py for the rules and
worker/sql.py for how concurrent appliers avoid deadlocks and lost updates).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

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
        with conn.transaction():
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
    fresh_rounds: set[str] = set()
    fresh_tools: set[str] = set()
    if p.rounds:
        cur.execute(sql.INSERT_OR_LOCK_ROUNDS, _columns(_sorted(p.rounds), _ROUND_COLUMNS))
        fresh_rounds = {key for (key,) in cur.fetchall()}
    if p.tools:
        cur.execute(sql.INSERT_OR_LOCK_TOOLS, _columns(_sorted(p.tools), _TOOL_COLUMNS))
        fresh_tools = {key for (key,) in cur.fetchall()}
    if p.mismatches:
        cur.execute(sql.APPLY_MISMATCHES, _columns(p.mismatches.values(), _MISMATCH_COLUMNS))
    if p.forwards:
        cur.execute(sql.APPLY_FORWARDS, _columns(p.forwards.values(), _FORWARD_COLUMNS))
    if p.sessions or p.rounds or p.tools:
        cur.execute(sql.APPLY_ROUNDS_TOOLS_SESSIONS, _main_params(p, fresh_rounds, fresh_tools))


def _sorted(rows: dict[str, Any]) -> list[Any]:
    return [rows[key] for key in sorted(rows)]


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


def _main_params(p: Plan, fresh_rounds: set[str], fresh_tools: set[str]) -> dict[str, list[Any]]:
    """Rounds and tools that existed are merged in SQL; rows just inserted are complete already,
    and only their contributions to their sessions travel, summed here per session. A new round
    with compressions still goes to SQL, which counts each compression once."""
    compressed = {c.round_id for c in p.compressions.values()}
    rounds = [r for r in p.rounds.values() if r.round_id not in fresh_rounds or r.round_id in compressed]
    params = _columns(rounds, _ROUND_COLUMNS, "r_")
    params["r_fresh"] = [r.round_id in fresh_rounds for r in rounds]
    params.update(_columns(p.compressions.values(), ("event_id", "round_id", "tokens_saved"), "c_"))
    params.update(_columns([t for t in p.tools.values() if t.tool_call_id not in fresh_tools], _TOOL_COLUMNS, "t_"))
    params.update(_columns(p.sessions.values(), _SESSION_COLUMNS, "s_"))
    fresh: dict[str, list[int]] = {}
    for key in fresh_rounds - compressed:
        r = p.rounds[key]
        d = fresh.setdefault(r.session_id, [0] * 8)
        d[0] += 1
        d[1] += r.prompt_tokens or 0
        d[2] += r.completion_tokens or 0
        d[3] += r.total_tokens or 0
        d[4] += r.prompt_cached_tool_outputs or 0
    for key in fresh_tools:
        fresh.setdefault(p.tools[key].session_id, [0] * 8)[7] += 1
    params["f_session_id"] = list(fresh)
    for i, name in enumerate(("rounds", "prompt_tokens", "completion_tokens", "total_tokens", "pcto",
                              "compressions", "tokens_saved", "tools")):
        params[f"f_{name}"] = [d[i] for d in fresh.values()]
    return params


_MISMATCH_COLUMNS = ("event_id", "reason", "mismatch_date", "occurred_at")
