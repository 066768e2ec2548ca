"""The apply engine: a batch of validated events into PostgreSQL, in one transaction.

Knows nothing of Redis. Idempotent and order-independent (see worker/merge.py for the rules and
worker/sql.py for how concurrent appliers avoid deadlocks and lost updates).

The transaction's statements go out in pipeline mode and need no answer from one another, so a
caller can start a batch (:func:`start`), do other work while PostgreSQL applies it, and collect
the outcome later (:meth:`InFlight.wait`); :func:`apply_events` does both at once. Building the
statements (:func:`prepare`) is pure, so a caller can do that too while another batch is out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

import psycopg
from psycopg import pq

from contract.events import Event
from worker import sql
from worker.errors import translate
from worker.merge import Plan, plan


@dataclass(frozen=True, slots=True)
class Applied:
    """What one batch touched (rows, not events: a batch is merged per key first)."""

    events: int
    sessions: int
    rounds: int
    tools: int
    forwards: int
    counters: int

    @classmethod
    def of(cls, p: Plan) -> Applied:
        return cls(events=p.events, sessions=len(p.sessions), rounds=len(p.rounds), tools=len(p.tools),
                   forwards=len(p.forwards), counters=len(p.compressions) + len(p.mismatches))


@dataclass(frozen=True, slots=True)
class Prepared:
    """A batch ready to send: its statements with their parameters, built without I/O."""

    applied: Applied
    statements: list[tuple[str, dict[str, list[Any]]]]


def prepare(events: Sequence[Event]) -> Prepared:
    """Merge ``events`` per key and build the transaction's statements (pure, no I/O)."""
    p = plan(events)
    return Prepared(Applied.of(p), _statements(p))


class InFlight:
    """One batch's transaction, sent and not yet confirmed."""

    def __init__(self, conn: psycopg.Connection[Any], prepared: Prepared) -> None:
        self.conn = conn
        self.applied = prepared.applied
        self._pipeline = conn.pipeline()
        self._pipeline.__enter__()
        try:
            conn.execute("BEGIN")
            for query, params in prepared.statements:
                conn.execute(query, params)
            conn.execute("COMMIT")
        except BaseException as exc:  # noqa: BLE001 - cleaned up, then re-raised by _fail
            self._fail(exc)

    def wait(self) -> Applied:
        """Block until PostgreSQL answered. Raises worker.errors.TransientError (retry the whole
        batch) or PermanentError (PostgreSQL refuses the data); nothing is committed then."""
        try:
            self._pipeline.__exit__(None, None, None)
        except BaseException as exc:  # noqa: BLE001 - cleaned up, then re-raised by _fail
            self._fail(exc)
        return self.applied

    def _fail(self, exc: BaseException) -> None:
        try:
            self._pipeline.__exit__(type(exc), exc, exc.__traceback__)
        except psycopg.Error:
            pass
        # An error in pipeline mode skips the rest, COMMIT included: end the aborted transaction.
        if not self.conn.closed and self.conn.info.transaction_status != pq.TransactionStatus.IDLE:
            try:
                self.conn.execute("ROLLBACK")
            except psycopg.Error:
                pass
        if isinstance(exc, psycopg.Error):
            raise translate(exc) from exc
        raise exc


def start(conn: psycopg.Connection[Any], batch: Sequence[Event] | Prepared) -> InFlight:
    """Send the transaction applying a batch (autocommit connection, not in a transaction)."""
    return InFlight(conn, batch if isinstance(batch, Prepared) else prepare(batch))


def apply_events(conn: psycopg.Connection[Any], events: Sequence[Event]) -> Applied:
    """Apply ``events`` in one transaction and refresh the touched sessions' aggregates in it."""
    if not conn.autocommit:
        raise ValueError("conn: the apply engine manages its own transaction; pass an autocommit connection")
    return start(conn, events).wait()


def _statements(p: Plan) -> list[tuple[str, dict[str, list[Any]]]]:
    # Lock order: rounds, tool calls, counter events and mismatch rows, forwards, sessions.
    out = []
    if p.rounds:
        out.append((sql.INSERT_OR_LOCK_ROUNDS, _columns(_sorted(p.rounds), _ROUND_COLUMNS)))
    if p.tools:
        out.append((sql.INSERT_OR_LOCK_TOOLS, _columns(_sorted(p.tools), _TOOL_COLUMNS)))
    if p.mismatches:
        out.append((sql.APPLY_MISMATCHES, _columns(p.mismatches.values(), _MISMATCH_COLUMNS)))
    if p.forwards:
        out.append((sql.APPLY_FORWARDS, _columns(p.forwards.values(), _FORWARD_COLUMNS)))
    if p.sessions or p.rounds or p.tools:
        out.append((sql.APPLY_ROUNDS_TOOLS_SESSIONS, _main_params(p)))
    return out


def _sorted(rows: dict[str, Any]) -> list[Any]:
    return [rows[key] for key in sorted(rows)]


def _columns(rows: Any, names: Sequence[str], prefix: str = "") -> dict[str, list[Any]]:
    """Rows as one array per column (what unnest() takes)."""
    rows = list(rows)
    if not rows:
        return {prefix + name: [] for name in names}
    columns = zip(*map(attrgetter(*names), rows)) if len(names) > 1 else ([getattr(r, names[0]) for r in rows],)
    return {prefix + name: list(column) for name, column in zip(names, columns, strict=True)}


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
_MISMATCH_COLUMNS = ("event_id", "reason", "mismatch_date", "occurred_at")


def _main_params(p: Plan) -> dict[str, list[Any]]:
    params = _columns(p.rounds.values(), _ROUND_COLUMNS, "r_")
    params.update(_columns(p.compressions.values(), ("event_id", "round_id", "tokens_saved"), "c_"))
    params.update(_columns(p.tools.values(), _TOOL_COLUMNS, "t_"))
    params.update(_columns(p.sessions.values(), _SESSION_COLUMNS, "s_"))
    return params
