"""Retention in Redis: dead letters past their retention, expired heartbeats, stale awaiting marks.

The PostgreSQL side of retention is worker/maintenance/prune.py; ``jobs.prune`` runs both.
"""

from __future__ import annotations

from datetime import datetime

import redis

from contract.keys import Keys


def trim_dead_letters(client: redis.Redis, keys: Keys, before: datetime) -> int:
    """Drop dead letters added before ``before`` (stream ids are their arrival times)."""
    floor_ms = int(before.timestamp() * 1000)
    return int(client.xtrim(keys.dead_letters, minid=f"{floor_ms}-0", approximate=False))


def trim_hints(client: redis.Redis, keys: Keys, *, now: datetime, awaiting_before: datetime) -> int:
    """Drop expired heartbeats (reconcile ignores them anyway) and awaiting marks older than
    ``awaiting_before`` (left by agents that died long ago)."""
    pipe = client.pipeline(transaction=False)
    pipe.zremrangebyscore(keys.active_sessions, "-inf", f"({now.timestamp()!r}")
    pipe.zremrangebyscore(keys.awaiting_sessions, "-inf", f"({awaiting_before.timestamp()!r}")
    return sum(int(n) for n in pipe.execute())
