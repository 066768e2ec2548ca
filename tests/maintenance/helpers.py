"""Helpers of the maintenance tests: complete histories, the children-sum check, settings."""

from __future__ import annotations

import itertools
from datetime import timedelta
from typing import Any

import psycopg

from contract.events import (
    Event,
    ForwardCompleted,
    RoundCompleted,
    SessionCompleted,
    TokenUsage,
)
from worker.settings import PruneSettings, ReconcileSettings

_ids = itertools.count()


def complete_history(history: list[Event]) -> list[Event]:
    """``history`` plus whatever makes every row end completed: a completion after the latest
    start of each session and forward, and one for each round that has none.

    Once such a history is applied, nothing is left to reconcile, so a reconcile racing with it
    must leave exactly the seed's state.
    """
    last_status: dict[str, Event] = {}
    last_forward: dict[str, Event] = {}
    round_first_start: dict[str, Event] = {}
    round_last: dict[str, Event] = {}
    completed_rounds: set[str] = set()
    for ev in sorted(history, key=lambda e: e.order_key):
        kind = ev.type
        if kind in ("session.started", "session.completed"):
            last_status[ev.session_id] = ev  # type: ignore[union-attr]
        elif kind in ("forward.started", "forward.completed"):
            last_forward[ev.forward_id] = ev  # type: ignore[union-attr]
        if kind.startswith(("round.", "tool.")):
            rid = ev.round_id  # type: ignore[union-attr]
            round_last[rid] = ev
            if kind == "round.started":
                round_first_start.setdefault(rid, ev)
            elif kind == "round.completed":
                completed_rounds.add(rid)
    extra: list[Event] = []
    for sid, ev in last_status.items():
        if ev.type == "session.started":
            extra.append(
                SessionCompleted(
                    event_id=f"x{next(_ids)}",
                    occurred_at=ev.occurred_at + timedelta(seconds=1),
                    session_id=sid,
                    status="completed",
                )
            )
    for fid, ev in last_forward.items():
        if ev.type == "forward.started":
            extra.append(
                ForwardCompleted(
                    event_id=f"x{next(_ids)}",
                    occurred_at=ev.occurred_at + timedelta(seconds=1),
                    forward_id=fid,
                    status="success",
                    status_code=200,
                    usage=TokenUsage(prompt_tokens=1, completion_tokens=2, total_tokens=3),
                )
            )
    for rid, start in round_first_start.items():
        if rid not in completed_rounds:
            extra.append(
                RoundCompleted(
                    event_id=f"x{next(_ids)}",
                    occurred_at=round_last[rid].occurred_at + timedelta(seconds=1),
                    round_id=rid,
                    session_id=start.session_id,  # type: ignore[union-attr]
                    status="success",
                    usage=TokenUsage(prompt_tokens=5, completion_tokens=5, total_tokens=10),
                )
            )
    return history + extra


# The seed's refresh_session_aggregates, for every session at once: rows where a stored aggregate
# differs from the sum over the session's children.
AGGREGATE_DRIFT = """
SELECT s.session_id
FROM session_metrics s
LEFT JOIN (
    SELECT session_id, count(*) AS n, sum(prompt_tokens) AS p, sum(completion_tokens) AS c,
           sum(total_tokens) AS t, sum(prompt_cached_tool_outputs) AS pcto,
           sum(compression_count) AS comp, sum(tokens_saved) AS saved,
           sum(COALESCE(cache_read_tokens, 0)) AS cr, sum(COALESCE(cache_write_tokens, 0)) AS cw,
           sum(COALESCE(reasoning_tokens, 0)) AS rs, sum(COALESCE(cost_usd, 0)) AS cost,
           count(*) FILTER (WHERE unpriced) AS unpriced
    FROM round_metrics GROUP BY session_id
) r USING (session_id)
LEFT JOIN (SELECT session_id, count(*) AS n FROM tool_call_metrics GROUP BY session_id) t USING (session_id)
WHERE (s.total_rounds, s.prompt_tokens, s.completion_tokens, s.total_tokens, s.prompt_cached_tool_outputs,
       s.total_compression_events, s.total_tokens_saved, s.tool_call_count,
       s.cache_read_tokens, s.cache_write_tokens, s.reasoning_tokens, s.cost_usd, s.unpriced_rounds)
   IS DISTINCT FROM
      (COALESCE(r.n, 0), COALESCE(r.p, 0), COALESCE(r.c, 0), COALESCE(r.t, 0), COALESCE(r.pcto, 0),
       COALESCE(r.comp, 0), COALESCE(r.saved, 0), COALESCE(t.n, 0),
       COALESCE(r.cr, 0), COALESCE(r.cw, 0), COALESCE(r.rs, 0), COALESCE(r.cost, 0), COALESCE(r.unpriced, 0))
ORDER BY 1
"""


def aggregate_drift(conn: psycopg.Connection[Any]) -> list[str]:
    return [row[0] for row in conn.execute(AGGREGATE_DRIFT).fetchall()]


def maintenance_settings(db_url: str, redis_url: str, key_prefix: str, **overrides: Any) -> ReconcileSettings:
    """What ``reconcile`` runs with, on this test's stream."""
    return ReconcileSettings(
        database_url=db_url, redis_url=redis_url, stream=f"{key_prefix}:events", **overrides
    )


def prune_settings(db_url: str, redis_url: str, key_prefix: str, **overrides: Any) -> PruneSettings:
    """What ``prune`` runs with, on this test's stream."""
    return PruneSettings(database_url=db_url, redis_url=redis_url, stream=f"{key_prefix}:events", **overrides)


def runs(conn: psycopg.Connection[Any], job: str | None = None) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT job, details FROM maintenance_runs WHERE %(job)s::text IS NULL OR job = %(job)s "
        "ORDER BY run_id",
        {"job": job},
    ).fetchall()
    return [{"job": j, **d} for j, d in rows]
