"""Re-pricing stored costs after the price list or the prices file changed (``metrics-worker reprice``).

Walks the rounds, then the forwards, along their primary key, one transaction per chunk: lock the
chunk's rows in key order (``FOR UPDATE``: every row must be priced, so it waits for a worker that
holds one), read their priced inputs, price them with the new list, write the costs that changed
with the apply engine's own statement (worker/engine/cost_sql.py). That statement moves the
sessions' sums by the difference and the roll-up triggers move the buckets, so everything stays
exact next to running workers; the lock order (rows, then sessions, each sorted) is the workers'.
A row is priced exactly as the worker prices it (worker/engine/costing.py), so running it twice
changes nothing, and neither does running it after a fresh apply with the same list.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from worker.engine import arrays, cost_sql
from worker.engine.costing import changes
from worker.engine.pricing import PriceList

log = logging.getLogger(__name__)

DEFAULT_CHUNK = 5_000

# Names from the constant table below, never from input; filters are parameters.
_LOCK = """
SELECT {key} FROM {table}
WHERE {key} > %(after)s
  AND (%(since)s::timestamptz IS NULL OR completed_at >= %(since)s)
  AND (%(model)s::text IS NULL OR model = %(model)s)
ORDER BY {key}
LIMIT %(limit)s
FOR UPDATE
"""


@dataclass(frozen=True)
class _Kind:
    name: str
    table: str
    key: str
    param: str  # PRICE_INPUTS' parameter for this kind's keys


_KINDS = (
    _Kind("rounds", "round_metrics", "round_id", "round_id"),
    _Kind("forwards", "forward_request_metrics", "forward_id", "forward_id"),
)


def reprice(
    conn: psycopg.Connection[Any],
    prices: PriceList,
    *,
    since: datetime | None = None,
    model: str | None = None,
    chunk_size: int = DEFAULT_CHUNK,
    progress: Callable[[str, int], None] | None = None,
) -> dict[str, int]:
    """Price every round and forward completed at or after ``since`` (of ``model``) again with
    ``prices`` (autocommit connection); per kind, the rows examined and the rows whose cost changed."""
    if chunk_size < 1:
        raise ValueError(f"chunk_size: must be at least 1, got {chunk_size}")
    if not conn.autocommit:
        raise ValueError("conn: reprice commits a chunk at a time; pass an autocommit connection")
    arrays.register(conn.adapters)
    out: dict[str, int] = {}
    for kind in _KINDS:
        examined = changed = 0
        after = ""
        while True:
            with conn.transaction():
                ids = [
                    row[0]
                    for row in conn.execute(
                        _LOCK.format(key=kind.key, table=kind.table),
                        {"after": after, "since": since, "model": model, "limit": chunk_size},
                    ).fetchall()
                ]
                if not ids:
                    break
                nothing = arrays.text(())
                keys = {"round_id": nothing, "forward_id": nothing, "p_model": nothing, "p_provider": nothing,
                        "p_completion": nothing}  # fmt: skip
                keys[kind.param] = arrays.text(ids)
                if kind.name == "rounds":  # nothing predicted: every row is read back
                    none = arrays.text([None] * len(ids))
                    keys.update(p_model=none, p_provider=none, p_completion=none)
                found = changes(prices, conn.execute(cost_sql.PRICE_INPUTS, keys).fetchall())
                if found:
                    conn.execute(cost_sql.APPLY_COSTS, found.params())
            examined, changed, after = examined + len(ids), changed + len(found), ids[-1]
            if progress:
                progress(kind.name, examined)
        log.debug("reprice %s: %s examined, %s changed", kind.name, examined, changed)
        out[f"{kind.name}_examined"], out[f"{kind.name}_changed"] = examined, changed
    return out
