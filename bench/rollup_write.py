"""The write path's price for the roll-ups: one worker's events/s as a fraction of the COPY ceiling,
this code against the commit before the roll-ups, in one run; deadlocks with 1, 2 and 4 workers;
the same batches applied in-process with and without the roll-up triggers,
taking turns (the engine did not change; the triggers are the write path's whole difference);
row-lock waits with 4 workers on 4 shards, on the roll-ups and on the base tables, with a slot
per connection and, as the control, with every connection on one slot (one row per bucket).

    python -m bench.rollup_write [--events 100000] [--runs 3] [--before REV] [--paired-off all|hourly]

The previous code runs from a git worktree of REV (default: the merge base with main) under
/tmp, in a subprocess that uses its own bench.throughput, worker and schema.sql. Runs alternate
(ceiling, before, after) so both see the same machine. Lock waits are sampled every 10 ms from
pg_locks: a backend waiting for a row lock holds the row's heavyweight tuple lock while it waits.
``--paired-off hourly`` makes the paired apply's "without" schema keep every roll-up but the hourly
ones (round_hourly, latency_hourly), marked as counting no row yet: their writes' price alone.
Writes bench/results/rollup_write.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psycopg

from bench.common import fresh_schema, median, realistic_events, write_result
from bench.throughput import copy_ceiling
from worker.engine.apply import apply_events
from worker.settings import DEFAULT_DATABASE_URL

ROOT = Path(__file__).resolve().parent.parent

_RATE = """
import contextlib, json, sys
from urllib.parse import quote
import bench.throughput as t
from bench.common import realistic_events
if sys.argv[4] == "one-slot":  # the control: every connection writes the same roll-up rows
    fresh = t.fresh_schema
    @contextlib.contextmanager
    def one_slot(prefix):
        with fresh(prefix) as url:
            yield url + quote(" -cmetrics.rollup_slot=0")
    t.fresh_schema = one_slot
print(json.dumps(t.pipeline_rate(realistic_events(int(sys.argv[1])), int(sys.argv[2]), int(sys.argv[3]))))
"""

_WAITS = """
SELECT count(*) FILTER (WHERE c.relname LIKE '%rollup%'),
       count(*) FILTER (WHERE c.relname NOT LIKE '%rollup%')
FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
WHERE l.locktype = 'tuple' AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
"""


def worktree(rev: str) -> Path:
    """A checkout of ``rev`` under /tmp (made once)."""
    sha = subprocess.run(["git", "rev-parse", rev], cwd=ROOT, capture_output=True, text=True, check=True)
    path = Path("/tmp") / f"rollups-before-{sha.stdout.strip()[:10]}"
    if not path.exists():
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(path), sha.stdout.strip()], cwd=ROOT, check=True
        )
    return path


def rate(code: Path, events: int, workers: int, shards: int = 1, slots: str = "own") -> dict[str, float]:
    """bench.throughput.pipeline_rate of the code in ``code``, in a subprocess; ``slots="one-slot"``
    makes every connection write roll-up slot 0 (one row per bucket)."""
    out = subprocess.run(
        [sys.executable, "-c", _RATE, str(events), str(workers), str(shards), slots],
        cwd=code,
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


class Sampler(threading.Thread):
    """Counts, every 10 ms, backends waiting for a row lock on a roll-up and on a base table."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url, self.stop = url, threading.Event()
        self.samples: list[tuple[int, int]] = []

    def run(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            while not self.stop.is_set():
                row = conn.execute(_WAITS).fetchone()
                self.samples.append((int(row[0]), int(row[1])) if row else (0, 0))
                time.sleep(0.01)

    def summary(self) -> dict[str, float]:
        n = max(1, len(self.samples))
        return {
            "samples": len(self.samples),
            "rollup_waiting_mean": sum(r for r, _ in self.samples) / n,
            "rollup_waiting_share": sum(1 for r, _ in self.samples if r) / n,
            "base_waiting_mean": sum(b for _, b in self.samples) / n,
        }


# The hourly roll-ups' back-fill entities (schema.sql: round_hourly, latency_hourly). Their base
# tables' one trigger feeds them with the daily roll-ups, so "off" marks them as counting no row yet
# (upto ''): the trigger still reads the rows once, and writes no hourly bucket.
HOURLY_ENTITIES = ("round_hourly", "tool_latency", "forward_latency")


def paired_apply(events: int, batch: int = 1000, off_what: str = "all") -> dict[str, float]:
    """The database's side of the price, robust to a noisy machine: the same batches applied by
    the engine in-process into two schemas, one with the roll-up triggers disabled (what the
    previous version wrote: the engine itself did not change), taking turns batch by batch and
    alternating which goes first. The median per-batch ratio of the times, and both medians."""
    stream = realistic_events(events)
    batches = [stream[i : i + batch] for i in range(0, len(stream), batch)]
    with (
        fresh_schema("rollups_on") as on_url,
        fresh_schema("rollups_off") as off_url,
        psycopg.connect(on_url, autocommit=True) as on,
        psycopg.connect(off_url, autocommit=True) as off_conn,
    ):
        if off_what == "all":
            for table in ("session_metrics", "round_metrics", "tool_call_metrics", "forward_request_metrics"):
                off_conn.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
        else:
            off_conn.execute(
                "UPDATE rollup_backfill SET done = false, upto = '' WHERE entity = ANY(%s)",
                (list(HOURLY_ENTITIES),),
            )
        times: dict[str, list[float]] = {"on": [], "off": []}
        for i, b in enumerate(batches):
            pair = [("on", on), ("off", off_conn)]
            for name, conn in pair if i % 2 == 0 else reversed(pair):
                began = time.perf_counter()
                apply_events(conn, b)
                times[name].append(time.perf_counter() - began)
    ratios = sorted(off_t / on_t for on_t, off_t in zip(times["on"], times["off"], strict=True))
    return {
        "batches": len(batches),
        "with_rollups_ms": median(times["on"]) * 1000,
        "without_ms": median(times["off"]) * 1000,
        "speed_with_over_without": median(ratios),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--before", default=None, help="the revision before the roll-ups (default: merge base with main)"
    )
    parser.add_argument("--database-url", default=None)
    parser.add_argument(
        "--paired-off",
        choices=["all", "hourly"],
        default="all",
        help="which triggers the paired apply's 'without' schema disables (default: all)",
    )
    args = parser.parse_args(argv)
    url = args.database_url or os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL
    rev = args.before
    if rev is None:
        rev = subprocess.run(
            ["git", "merge-base", "HEAD", "main"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    before_code = worktree(rev)
    data: dict[str, Any] = {"before": rev, "events": args.events, "runs": []}
    data["paired_off"] = args.paired_off
    data["paired_apply"] = [paired_apply(args.events, off_what=args.paired_off) for _ in range(args.runs)]
    print(f"paired apply: {json.dumps(data['paired_apply'])}", flush=True)
    for i in range(args.runs):
        run: dict[str, Any] = {"ceiling": copy_ceiling()}
        order = [("before_1", before_code), ("after_1", ROOT)]
        for key, code in order if i % 2 == 0 else reversed(order):  # neither always goes first
            run[key] = rate(code, args.events, 1)
        for workers in (2, 4):
            run[f"after_{workers}"] = rate(ROOT, args.events, workers)
        for key, slots in (("after_4x4", "own"), ("one_slot_4x4", "one-slot")):
            sampler = Sampler(url)
            sampler.start()
            run[key] = rate(ROOT, args.events, 4, 4, slots)
            sampler.stop.set()
            sampler.join()
            run[f"waits_{key}"] = sampler.summary()
        data["runs"].append(run)
        print(f"run {i + 1}: {json.dumps(run)}", flush=True)

    runs = data["runs"]
    before = median([r["before_1"]["events_per_s"] / r["ceiling"] for r in runs])
    after = median([r["after_1"]["events_per_s"] / r["ceiling"] for r in runs])
    ratios = [r["after_1"]["events_per_s"] / r["before_1"]["events_per_s"] for r in runs]
    data["summary"] = {
        "paired_apply_speed_with_over_without": round(
            median([p["speed_with_over_without"] for p in data["paired_apply"]]), 3
        ),
        "ceiling_rows_per_s": median([r["ceiling"] for r in runs]),
        "one_worker_of_ceiling_before": round(before, 3),
        "one_worker_of_ceiling_after": round(after, 3),
        "after_over_before": round(after / before, 3),
        "after_over_before_per_run": [round(x, 3) for x in ratios],
        "deadlocks": {
            k: sum(int(r[k]["deadlocks"]) for r in runs)
            for k in ("after_1", "after_2", "after_4", "after_4x4", "one_slot_4x4")
        },
        "events_per_s": {
            k: median([r[k]["events_per_s"] for r in runs])
            for k in ("before_1", "after_1", "after_2", "after_4", "after_4x4", "one_slot_4x4")
        },
        "waits": {
            key: {
                k: round(median([r[f"waits_{key}"][k] for r in runs]), 4)
                for k in ("rollup_waiting_mean", "rollup_waiting_share", "base_waiting_mean")
            }
            for key in ("after_4x4", "one_slot_4x4")
        },
    }
    print(json.dumps(data["summary"], indent=2))
    print(f"written {write_result('rollup_write', data)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
