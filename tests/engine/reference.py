"""The seed's write semantics, transcribed literally from storage.rs, as an in-memory reference.

Applying a history once, in true order (contract order keys), then refreshing every session's
aggregates, gives the state the pipeline must converge to. Written independently of
worker/engine/merge.py and worker/engine/sql.py on purpose: it follows the seed's statements one by one.

One deliberate difference: ``updated_at`` of a session is the latest occurred_at of any event
naming it (the seed's final refresh would stamp the wall clock, which no pipeline can match).

Contract v1's optional fields, which the seed did not have, are written as the seed writes the
columns next to them: user_id with the session's model (every start), a round's provider with its
model (the first start), its usage parts and time to first token with its usage (the completion),
a forward's provider and links with its start, its parts and time to first token with its
completion; the session sums the parts over its rounds as it sums prompt_tokens (none counts 0).

Cost (not the seed's) is computed at the end from each row's final state with
``PriceList.price()`` itself (not the engine's costing module): a started, completed round or
forward is priced at its completed_at; unknown models are NULL and marked unpriced; a session
sums its rounds' costs and counts its unpriced rounds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, ClassVar

import psycopg

from contract.events import Event
from worker.engine.apply import apply_events
from worker.engine.pricing import PriceList, TokenUsage
from worker.errors import TransientError

Row = dict[str, Any]


class SeedReference:
    def __init__(self) -> None:
        self.sessions: dict[str, Row] = {}
        self.rounds: dict[str, Row] = {}
        self.tools: dict[str, Row] = {}
        self.forwards: dict[str, Row] = {}
        self.mismatches: dict[tuple[str, Any], Row] = {}
        self._session_seen: dict[str, datetime] = {}

    @classmethod
    def of(cls, history: Iterable[Event]) -> SeedReference:
        ref = cls()
        unique = {ev.event_id: ev for ev in history}
        for ev in sorted(unique.values(), key=lambda e: e.order_key):
            ref.apply(ev)
        ref.finish()
        return ref

    # -- one method per seed write ------------------------------------------------------------

    def apply(self, ev: Any) -> None:
        t = ev.occurred_at
        # A forward's session_id is a link, not activity of the session: the session row is not
        # written for it (forwards route by forward_id, apart from their session).
        sid = None if ev.type.startswith("forward.") else getattr(ev, "session_id", None)
        if sid is not None:
            seen = self._session_seen.get(sid)
            self._session_seen[sid] = t if seen is None else max(seen, t)
        handler = self._HANDLERS.get(ev.type)
        if handler is None:  # pragma: no cover
            raise AssertionError(ev.type)
        handler(self, ev, t)

    def _session_started(self, ev: Any, t: datetime) -> None:
        s = self.sessions.get(ev.session_id)
        if s is None:
            self.sessions[ev.session_id] = {
                "session_id": ev.session_id,
                "model": ev.model,
                "user_id": ev.user_id,
                "started_at": t,
                "completed_at": None,
                "status": "running",
                "total_rounds": 0,
                "cache_read_tokens": 0,
                "cache_write_tokens": 0,
                "reasoning_tokens": 0,
                "prompt_tokens": 0,
                "completion_tokens": 0,
                "total_tokens": 0,
                "prompt_cached_tool_outputs": 0,
                "total_compression_events": 0,
                "total_tokens_saved": 0,
                "tool_call_count": 0,
                "message_count": 0,
                "updated_at": t,
            }
        else:
            s["model"] = ev.model
            s["user_id"] = ev.user_id
            s["started_at"] = min(s["started_at"], t)
            s["completed_at"] = None
            s["status"] = "running"
            s["updated_at"] = t

    def _session_message_count(self, ev: Any, t: datetime) -> None:
        s = self.sessions.get(ev.session_id)
        if s is not None:  # the seed's plain UPDATE
            s["message_count"] = ev.message_count
            s["updated_at"] = t

    def _session_completed(self, ev: Any, t: datetime) -> None:
        self.refresh(ev.session_id, t)
        s = self.sessions.get(ev.session_id)
        if s is not None:
            s["status"] = ev.status
            s["completed_at"] = t
            s["updated_at"] = t

    def _round_started(self, ev: Any, t: datetime) -> None:
        if ev.round_id not in self.rounds:  # ON CONFLICT DO NOTHING
            self.rounds[ev.round_id] = {
                "round_id": ev.round_id,
                "session_id": ev.session_id,
                "model": ev.model,
                "started_at": t,
                "completed_at": None,
                "status": "running",
                "prompt_tokens": 0,
                "completion_tokens": 0,
                "total_tokens": 0,
                "prompt_cached_tool_outputs": 0,
                "compression_count": 0,
                "tokens_saved": 0,
                "error": None,
                "provider": ev.provider,
                "cache_read_tokens": None,
                "cache_write_tokens": None,
                "reasoning_tokens": None,
                "time_to_first_token_ms": None,
            }
        self.refresh(ev.session_id, t)

    def _round_completed(self, ev: Any, t: datetime) -> None:
        r = self.rounds[ev.round_id]  # the seed's query_row: a true history starts it first
        r.update(
            completed_at=t,
            status=ev.status,
            prompt_tokens=ev.usage.prompt_tokens,
            completion_tokens=ev.usage.completion_tokens,
            total_tokens=ev.usage.total_tokens,
            prompt_cached_tool_outputs=ev.prompt_cached_tool_outputs,
            error=ev.error,
            cache_read_tokens=ev.usage.cache_read_tokens,
            cache_write_tokens=ev.usage.cache_write_tokens,
            reasoning_tokens=ev.usage.reasoning_tokens,
            time_to_first_token_ms=ev.time_to_first_token_ms,
        )
        self.refresh(r["session_id"], t)

    def _round_compressed(self, ev: Any, t: datetime) -> None:
        r = self.rounds[ev.round_id]
        r["compression_count"] += 1
        r["tokens_saved"] += ev.tokens_saved
        self.refresh(r["session_id"], t)

    def _tool_started(self, ev: Any, t: datetime) -> None:
        tc = self.tools.get(ev.tool_call_id)
        if tc is None:
            self.tools[ev.tool_call_id] = {
                "tool_call_id": ev.tool_call_id,
                "round_id": ev.round_id,
                "session_id": ev.session_id,
                "tool_name": ev.tool_name,
                "started_at": t,
                "completed_at": None,
                "success": None,
                "error": None,
            }
        else:  # DO UPDATE: the latest start wins, completion fields kept
            tc.update(round_id=ev.round_id, session_id=ev.session_id, tool_name=ev.tool_name, started_at=t)

    def _tool_completed(self, ev: Any, t: datetime) -> None:
        tc = self.tools[ev.tool_call_id]
        tc.update(completed_at=t, success=ev.success, error=ev.error)
        self.refresh(tc["session_id"], t)

    def _forward_started(self, ev: Any, t: datetime) -> None:
        self.forwards[ev.forward_id] = {  # insert, or DO UPDATE resetting every completion field
            "forward_id": ev.forward_id,
            "endpoint": ev.endpoint,
            "model": ev.model,
            "is_stream": ev.is_stream,
            "started_at": t,
            "completed_at": None,
            "status_code": None,
            "status": "pending",
            "prompt_tokens": None,
            "completion_tokens": None,
            "total_tokens": None,
            "error": None,
            "updated_at": t,
            "provider": ev.provider,
            "session_id": ev.session_id,
            "round_id": ev.round_id,
            "cache_read_tokens": None,
            "cache_write_tokens": None,
            "reasoning_tokens": None,
            "time_to_first_token_ms": None,
        }

    def _forward_completed(self, ev: Any, t: datetime) -> None:
        f = self.forwards.get(ev.forward_id)
        if f is not None:  # plain UPDATE
            u = ev.usage
            f.update(
                completed_at=t,
                status_code=ev.status_code,
                status=ev.status,
                prompt_tokens=u.prompt_tokens if u else None,
                completion_tokens=u.completion_tokens if u else None,
                total_tokens=u.total_tokens if u else None,
                error=ev.error,
                updated_at=t,
                cache_read_tokens=u.cache_read_tokens if u else None,
                cache_write_tokens=u.cache_write_tokens if u else None,
                reasoning_tokens=u.reasoning_tokens if u else None,
                time_to_first_token_ms=ev.time_to_first_token_ms,
            )

    def _sync_mismatch(self, ev: Any, t: datetime) -> None:
        key = (ev.reason, t.date())
        m = self.mismatches.get(key)
        if m is None:
            self.mismatches[key] = {
                "reason": ev.reason,
                "mismatch_date": t.date(),
                "count": 1,
                "updated_at": t,
            }
        else:
            m["count"] += 1
            m["updated_at"] = t

    _HANDLERS: ClassVar[dict[str, Callable[[SeedReference, Any, datetime], None]]] = {
        "session.started": _session_started,
        "session.message_count": _session_message_count,
        "session.completed": _session_completed,
        "round.started": _round_started,
        "round.completed": _round_completed,
        "round.compressed": _round_compressed,
        "tool.started": _tool_started,
        "tool.completed": _tool_completed,
        "forward.started": _forward_started,
        "forward.completed": _forward_completed,
        "sync.mismatch": _sync_mismatch,
    }

    def refresh(self, session_id: str, at: datetime) -> None:
        s = self.sessions.get(session_id)
        if s is None:
            return
        rounds = [r for r in self.rounds.values() if r["session_id"] == session_id]
        s["total_rounds"] = len(rounds)
        for col, src in (
            ("prompt_tokens", "prompt_tokens"),
            ("completion_tokens", "completion_tokens"),
            ("total_tokens", "total_tokens"),
            ("prompt_cached_tool_outputs", "prompt_cached_tool_outputs"),
            ("total_compression_events", "compression_count"),
            ("total_tokens_saved", "tokens_saved"),
        ):
            s[col] = sum(r[src] for r in rounds)
        for col in ("cache_read_tokens", "cache_write_tokens", "reasoning_tokens"):
            s[col] = sum(r[col] or 0 for r in rounds)
        s["tool_call_count"] = sum(1 for t in self.tools.values() if t["session_id"] == session_id)
        s["updated_at"] = at

    def finish(self) -> None:
        for session_id in self.sessions:
            self.refresh(session_id, self._session_seen[session_id])

    def priced(self, prices: PriceList | None = None) -> None:
        """Set every row's cost columns from its final state (after :meth:`finish`)."""
        prices = prices or PriceList()
        for row in [*self.rounds.values(), *self.forwards.values()]:
            row.update(cost_usd=None, cost_source=None, unpriced=False)
            if row["model"] is None or row["completed_at"] is None or row["started_at"] is None:
                continue
            usage = TokenUsage(
                *(row[c] or 0 for c in ("prompt_tokens", "completion_tokens")),
                *(row[c] or 0 for c in ("cache_read_tokens", "cache_write_tokens", "reasoning_tokens")),
            )
            found = prices.price(usage, row["model"], row["provider"], row["completed_at"])
            if found is None:
                row["unpriced"] = True
            else:
                row.update(cost_usd=found.usd, cost_source=found.source)
        for session_id, s in self.sessions.items():
            rounds = [r for r in self.rounds.values() if r["session_id"] == session_id]
            s["cost_usd"] = sum((r["cost_usd"] or 0 for r in rounds), start=0)
            s["unpriced_rounds"] = sum(1 for r in rounds if r["unpriced"])

    def tables(self) -> dict[str, list[Row]]:
        self.priced()
        return {
            "session_metrics": sorted(self.sessions.values(), key=lambda r: r["session_id"]),
            "round_metrics": sorted(self.rounds.values(), key=lambda r: r["round_id"]),
            "tool_call_metrics": sorted(self.tools.values(), key=lambda r: r["tool_call_id"]),
            "forward_request_metrics": sorted(self.forwards.values(), key=lambda r: r["forward_id"]),
            "execute_sync_mismatch_metrics": sorted(
                self.mismatches.values(), key=lambda r: (r["reason"], r["mismatch_date"])
            ),
        }


_KEYS = {
    "session_metrics": ("session_id",),
    "round_metrics": ("round_id",),
    "tool_call_metrics": ("tool_call_id",),
    "forward_request_metrics": ("forward_id",),
    "execute_sync_mismatch_metrics": ("reason", "mismatch_date"),
}


def database_tables(conn: Any) -> dict[str, list[Row]]:
    """The seed's columns of every table, sorted by key: the bookkeeping *_version columns and the
    reconcile mark (``reconciled_at``, not the seed's; the reconcile tests check it) left out."""
    from psycopg.rows import dict_row

    out: dict[str, list[Row]] = {}
    with conn.cursor(row_factory=dict_row) as cur:
        for table, key in _KEYS.items():
            cur.execute(f"SELECT * FROM {table}")
            rows = [
                {k: v for k, v in row.items() if not k.endswith("_version") and k != "reconciled_at"}
                for row in cur.fetchall()
            ]
            out[table] = sorted(rows, key=lambda r: tuple(r[k] for k in key))
    return out


def apply_retrying(url: str, batches: list[list[Event]], errors: list[BaseException]) -> None:
    """Apply ``batches`` in order on a connection of its own, retrying what PostgreSQL calls
    transient, as a worker would; for tests running several at once in threads. A failure goes
    into ``errors``, for the test thread to assert on."""
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            for batch in batches:
                while True:
                    try:
                        apply_events(conn, batch)
                        break
                    except TransientError:
                        continue
    except Exception as exc:
        errors.append(exc)
