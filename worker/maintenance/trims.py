"""Retention in Redis: dead letters past their retention, expired heartbeats, stale awaiting marks.

The PostgreSQL side of retention is worker/maintenance/prune.py; ``jobs.prune`` runs both.
"""

from __future__ import annotations

from datetime import datetime

from contract.connect import Client, placed
from contract.keys import Keys


def trim_dead_letters(client: Client, keys: Keys, before: datetime) -> int:
    """Drop dead letters added before ``before`` (stream ids are their arrival times), in every
    dead-letter stream (one per shard, in its slot on a cluster)."""
    floor_ms = int(before.timestamp() * 1000)
    return sum(
        int(client.xtrim(key, minid=f"{floor_ms}-0", approximate=False))
        for key in placed(keys, client).dead_letter_streams
    )


def trim_hints(client: Client, keys: Keys, *, now: datetime, awaiting_before: datetime) -> int:
    """Drop expired heartbeats (reconcile ignores them anyway) and awaiting marks older than
    ``awaiting_before`` (left by agents that died long ago)."""
    pipe = client.pipeline(transaction=False)
    pipe.zremrangebyscore(keys.active_sessions, "-inf", f"({now.timestamp()!r}")
    pipe.zremrangebyscore(keys.awaiting_sessions, "-inf", f"({awaiting_before.timestamp()!r}")
    return sum(int(n) for n in pipe.execute())
