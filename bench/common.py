"""Shared plumbing for the benchmarks: fresh schemas, realistic events, timing, result files."""

from __future__ import annotations

import json
import os
import platform
import random
import statistics
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from contract.events import Event
from worker.dev.scratch import with_search_path
from worker.schema import apply_schema

DATABASE_URL = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
RESULTS = Path(__file__).resolve().parent / "results"


@contextmanager
def fresh_schema(prefix: str = "bench", database_url: str | None = None) -> Iterator[str]:
    """A new schema with the tables; yields a URL whose connections use it; dropped afterwards."""
    base = database_url or DATABASE_URL
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(base, autocommit=True) as admin:
        admin.execute(f'CREATE SCHEMA "{name}"')
    url = with_search_path(base, name)
    with psycopg.connect(url, autocommit=True) as conn:
        apply_schema(conn)
    try:
        yield url
    finally:
        with psycopg.connect(base, autocommit=True) as admin:
            admin.execute(f'DROP SCHEMA "{name}" CASCADE')


def realistic_events(n: int, seed: int = 1, agents: int = 50) -> list[Event]:
    """``n`` events of the simulator's mix (sessions, rounds, tools, compressions, forwards) from
    ``agents`` agents running at once, interleaved by time as they would reach one stream."""
    import heapq

    from producer.histories import agent_events

    start = datetime(2026, 11, 1, tzinfo=UTC)
    streams = [
        agent_events(
            random.Random(seed * 1000 + a), sessions=max(1, n // agents // 20), concurrency=3, start=start
        )
        for a in range(agents)
    ]
    out: list[Event] = []
    for ev in heapq.merge(*streams, key=lambda e: e.occurred_at):
        out.append(ev)
        if len(out) >= n:
            break
    return out


def median(values: list[float]) -> float:
    return statistics.median(values)


def machine() -> dict[str, Any]:
    with psycopg.connect(DATABASE_URL) as conn:
        pg = conn.execute("SHOW server_version").fetchone()[0]
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "postgres": pg,
        "platform": platform.platform(),
    }


def write_result(name: str, data: dict[str, Any]) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"machine": machine(), **data}, indent=2, default=str) + "\n")
    return path
