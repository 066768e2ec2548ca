"""Fault drills: a load through the real producer and worker processes while something breaks.

    python -m bench.drills [--events 20000] [--only sigkill,postgres,redis,outage,flood,poison] [--short]

Each drill publishes a realistic history, breaks something while workers apply it, waits until
the stream is drained, and compares the database with the in-order result of exactly the events
that were published: published, applied, dead-lettered, lost (must be 0), double-counted (must
be 0). The full runs: 50 SIGKILLs of workers; PostgreSQL restarted 5 times; Redis (AOF) restarted
5 times; Redis away for 30 s under 4 publishing agents (the producers spool and replay; the order
per session in the stream is checked, a session out of order counts as double-counted); a flood
from one producer at several times what one worker applies (peak memory of producer, Redis and
worker printed); 5% poison entries and 5% hostile strings. ``--short``: the suite's fault counts.

The PostgreSQL and Redis drills restart servers of their own (embedded, under a temporary
folder), so they never disturb anything else on the machine. The suite runs short versions
(tests/drills/) and the table is markdown for the README.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psycopg
import redis

from bench.common import REDIS_URL, fresh_schema, realistic_events, write_result
from bench.drill_loads import MemoryWatch, hostile, out_of_order, partition, poison
from contract.codec import STREAM_FIELD
from contract.events import Event
from contract.keys import Keys
from producer.publisher import Publisher
from producer.settings import ProducerSettings
from worker.dev.embedded import EmbeddedServers
from worker.dev.scratch import wait_drained
from worker.schema import apply_schema

WORKER = [sys.executable, "-m", "worker.cli", "run"]


@dataclass
class Report:
    drill: str
    published: int
    malformed: int
    applied: int
    dead_lettered: int
    lost: int
    double_counted: int
    faults: int
    seconds: float
    notes: str = ""

    @property
    def ok(self) -> bool:
        return self.lost == 0 and self.double_counted == 0 and self.dead_lettered == self.malformed


class Workers:
    """Worker processes that can be killed and replaced."""

    def __init__(self, env: dict[str, str], count: int, logs: Path) -> None:
        self.env, self.logs = env, logs
        self.procs: list[subprocess.Popen[bytes]] = []
        self._n = 0
        for _ in range(count):
            self.spawn()

    def spawn(self) -> None:
        self._n += 1
        name = f"drill-{self._n}"
        with open(self.logs / f"{name}.log", "wb") as log:
            self.procs.append(
                subprocess.Popen(
                    [*WORKER, "--consumer", name], env=self.env, stdout=log, stderr=subprocess.STDOUT
                )
            )

    def kill_one(self, rng: random.Random) -> None:
        alive = [p for p in self.procs if p.poll() is None]
        victim = rng.choice(alive)
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        self.spawn()

    def stop(self) -> list[int]:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        return [p.wait(timeout=30) for p in self.procs]


def compare(conn: psycopg.Connection[Any], events: list[Event]) -> tuple[int, int, bool]:
    """(lost, double-counted, identical) of the database against the in-order reference."""
    from tests.engine.reference import SeedReference, database_tables

    expected = SeedReference.of(events).tables()
    actual = database_tables(conn)
    lost = double = 0
    for table, rows in expected.items():
        lost += max(0, len(rows) - len(actual[table]))
        double += max(0, len(actual[table]) - len(rows))
    for counted in ("total_rounds", "tool_call_count", "total_compression_events"):
        want = sum(r[counted] for r in expected["session_metrics"])
        got = sum(r[counted] for r in actual["session_metrics"])
        lost += max(0, want - got)
        double += max(0, got - want)
    want = sum(r["count"] for r in expected["execute_sync_mismatch_metrics"])
    got = sum(r["count"] for r in actual["execute_sync_mismatch_metrics"])
    return lost + max(0, want - got), double + max(0, got - want), expected == actual


@contextmanager
def servers(
    kind: str, folder: Path, database_url: str | None, redis_url: str
) -> Iterator[tuple[str, str, EmbeddedServers | None]]:
    """The drill's own server where it restarts one; the given (or the environment's) otherwise."""
    if kind in ("postgres", "redis", "outage", "flood"):  # flood: Redis memory is the drill's alone
        embedded = EmbeddedServers(folder)
        try:
            pg = embedded.start_postgres() if kind == "postgres" else None
            rd = embedded.start_redis() if kind in ("redis", "outage", "flood") else redis_url
            if pg is None:
                with fresh_schema("drill", database_url) as url:
                    yield url, rd, embedded
            else:
                yield pg, rd, embedded
        finally:
            embedded.close()
    else:
        with fresh_schema("drill", database_url) as url:
            yield url, redis_url, None


def run_drill(
    kind: str,
    events: list[Event],
    *,
    workers: int = 3,
    faults: int = 3,
    seed: int = 7,
    timeout: float = 240.0,
    database_url: str | None = None,
    redis_url: str = REDIS_URL,
) -> Report:
    """One drill. ``faults``: kills or restarts; for ``outage``, the seconds Redis stays away."""
    rng = random.Random(seed)
    started = time.monotonic()
    load = hostile(events, rng) if kind == "poison" else events
    with tempfile.TemporaryDirectory(prefix=f"drill-{kind}-") as tmp:
        folder = Path(tmp)
        (folder / "logs").mkdir()
        with servers(kind, folder, database_url, redis_url) as (db_url, r_url, embedded):
            run = _Run(kind, load, rng, folder, db_url, r_url, embedded, faults)
            report = run.execute(1 if kind == "flood" else workers, timeout)
    report.seconds = round(time.monotonic() - started, 1)
    return report


class _Run:
    """The moving parts of one drill: workers, publishers, the fault, the comparison."""

    def __init__(
        self,
        kind: str,
        events: list[Event],
        rng: random.Random,
        folder: Path,
        db_url: str,
        r_url: str,
        embedded: EmbeddedServers | None,
        faults: int,
    ) -> None:
        self.kind, self.events, self.rng, self.folder = kind, events, rng, folder
        self.db_url, self.r_url, self.embedded, self.faults = db_url, r_url, embedded, faults
        self.stream, self.group = f"drill:{uuid.uuid4().hex[:8]}:events", "drill-workers"
        self.env = dict(
            os.environ,
            DATABASE_URL=db_url,
            REDIS_URL=r_url,
            METRICS_STREAM=self.stream,
            METRICS_GROUP=self.group,
            METRICS_CLAIM_IDLE_MS="1000",
            METRICS_BLOCK_MS="200",
            METRICS_BATCH_SIZE="200",
        )
        self.raw = redis.Redis.from_url(r_url)
        self.malformed = 0
        self.fault_count = 0
        self.notes = ""

    def execute(self, workers: int, timeout: float) -> Report:
        if self.embedded is not None and self.kind == "postgres":
            with psycopg.connect(self.db_url, autocommit=True) as c:
                apply_schema(c)
        if self.kind == "outage":  # a group that never reads: nothing is trimmed, order can be read back
            self.raw.xgroup_create(self.stream, "order-check", id="0", mkstream=True)
        pool = Workers(self.env, workers, self.folder / "logs")
        agents = 4 if self.kind == "outage" else 1
        publishers = [
            Publisher(
                ProducerSettings(redis_url=self.r_url, stream=self.stream, spool_dir=self.folder / "spool")
            )
            for _ in range(agents)
        ]
        parts = partition(self.events, agents) if agents > 1 else [self.events]
        watch = MemoryWatch(self.raw, [p.pid for p in pool.procs], lambda: sum(p.queued for p in publishers))
        published = time.monotonic()
        with watch:
            threads = [
                threading.Thread(target=self._publish, args=(pub, part))
                for pub, part in zip(publishers, parts, strict=True)
            ]
            if self.kind not in ("poison", "flood"):
                threads.append(threading.Thread(target=self._break_things, args=(pool,)))
            for t in threads:
                t.start()
            for t in threads[:agents]:
                t.join(timeout)
            publish_seconds = time.monotonic() - published
            for t in threads:
                t.join(timeout)
            assert all(pub.close(120) for pub in publishers), "a publisher could not deliver everything"
            spooled = sum(pub.stats()["spooled"] for pub in publishers)
            observer = redis.Redis.from_url(self.r_url, socket_timeout=2)
            wait_drained(observer, Keys(self.stream), self.group, timeout)
            observer.close()
            drained_seconds = time.monotonic() - published
        if self.kind == "flood":
            self.notes = (
                f"published {len(self.events) / publish_seconds:,.0f}/s, applied "
                f"{len(self.events) / drained_seconds:,.0f}/s by 1 worker "
                f"({drained_seconds / publish_seconds:.1f}x); {watch.summary()}"
            )
        disorder = out_of_order(self.raw, self.stream, self.events) if self.kind == "outage" else 0
        if self.kind == "outage":
            self.notes = f"{spooled:,} events spooled and replayed; {disorder} sessions out of order"
        codes = pool.stop()
        # Distinct entries: a batch claimed by a second worker while the first was still on it (a
        # loaded machine, claims after 1 s here) is dead-lettered by both; the letters are the same.
        letters = [fields[b"entry_id"] for _, fields in self.raw.xrange(f"{self.stream}:dead")]
        dead = len(set(letters))
        if len(letters) > dead:
            self.notes = f"{len(letters) - dead} entries dead-lettered twice"
        self.raw.close()
        with psycopg.connect(self.db_url) as conn:
            lost, double, identical = compare(conn, self.events)
        if not identical and lost == 0 and double == 0:
            lost = 1  # a difference the row counts do not show is still a failure
        # -SIGTERM: a replacement still starting up when it was asked to stop.
        if any(code not in (0, -signal.SIGKILL, -signal.SIGTERM) for code in codes):
            raise RuntimeError(f"a worker exited with {codes}; logs in {self.folder / 'logs'}")
        return Report(
            self.kind,
            len(self.events),
            self.malformed,
            len(self.events) - lost,
            dead,
            lost,
            double + disorder,
            self.fault_count,
            0.0,
            self.notes,
        )

    def _publish(self, publisher: Publisher, events: list[Event]) -> None:
        # A load over time, long enough for every fault to land in the middle of it; a flood
        # publishes as fast as it can.
        span = 2 * self.faults + 4 if self.kind == "outage" else max(3.0, 1.2 * self.faults)
        pace = 0.0 if self.kind == "flood" else span / max(1, len(events) // 100)
        for i, ev in enumerate(events):
            publisher.publish(ev)
            if self.kind == "poison" and self.rng.random() < 0.05:
                _xadd_retrying(self.raw, self.stream, {STREAM_FIELD: poison(self.rng, i)})
                self.malformed += 1
            if pace and i % 100 == 0:
                time.sleep(pace)

    def _break_things(self, pool: Workers) -> None:
        if self.kind == "outage":
            assert self.embedded is not None
            time.sleep(2.0)
            port = self.embedded.stop_redis()
            self.fault_count += 1
            time.sleep(self.faults)
            self.embedded.start_redis(port)
            return
        for _ in range(self.faults):
            time.sleep(self.rng.uniform(0.3, 1.0))
            self.fault_count += 1
            _inject_fault(self.kind, self.rng, pool, self.db_url, self.embedded)


def _inject_fault(
    kind: str, rng: random.Random, pool: Workers, db_url: str, embedded: EmbeddedServers | None
) -> None:
    """One fault of the drill's kind: a worker killed, or a server restarted under the load."""
    if kind == "sigkill":
        pool.kill_one(rng)
    elif kind == "postgres":
        _terminate_backends(db_url)
        time.sleep(0.2)
        assert embedded is not None
        embedded.restart_postgres()
    elif kind == "redis":
        assert embedded is not None
        embedded.restart_redis()


def _xadd_retrying(client: redis.Redis, stream: str, fields: dict[str, bytes]) -> None:
    for _ in range(100):
        try:
            client.xadd(stream, fields)
            return
        except redis.ConnectionError:
            time.sleep(0.1)


def _terminate_backends(database_url: str) -> None:
    try:
        with psycopg.connect(database_url, autocommit=True, connect_timeout=3) as c:
            c.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name LIKE 'metrics-worker:%' AND pid <> pg_backend_pid()"
            )
    except psycopg.Error:
        pass


@dataclass(frozen=True)
class Drill:
    title: str
    full: int  # faults in the full run (outage: seconds Redis is away)
    short: int  # in the suite (tests/drills)


DRILLS: dict[str, Drill] = {
    "sigkill": Drill("SIGKILL of a worker at random moments under load", 50, 3),
    "postgres": Drill("PostgreSQL connections terminated and the server restarted", 5, 3),
    "redis": Drill("Redis (AOF on) restarted", 5, 3),
    "outage": Drill("Redis away under 4 publishing agents: spool, replay, order per session", 30, 3),
    "flood": Drill("producer flood, one worker applying", 0, 0),
    "poison": Drill("5% poison, 5% hostile strings (SQL, emoji, newlines, 100 kB, 1 MiB)", 0, 0),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--only", default=",".join(DRILLS))
    parser.add_argument("--short", action="store_true", help="the suite's fault counts")
    args = parser.parse_args(argv)
    events = realistic_events(args.events, seed=5)
    reports = []
    for kind in args.only.split(","):
        drill = DRILLS[kind]
        print(f"drill {kind}: {drill.title} ...", file=sys.stderr, flush=True)
        faults = drill.short if args.short else drill.full
        reports.append(run_drill(kind, events, faults=faults, timeout=600))
    header = ("drill", "published", "applied", "dead-lettered", "lost", "double-counted", "faults", "seconds")
    print("  ".join(f"{h:>14}" for h in header))
    for r in reports:
        print(
            "  ".join(
                f"{v:>14}"
                for v in (
                    r.drill,
                    r.published,
                    r.applied,
                    r.dead_lettered,
                    r.lost,
                    r.double_counted,
                    r.faults,
                    r.seconds,
                )
            )
        )
    print()
    print("| drill | published | applied | dead-lettered | lost | double-counted | faults | seconds |")
    print("|---|---|---|---|---|---|---|---|")
    for r in reports:
        title = DRILLS[r.drill].title + (f" ({r.notes})" if r.notes else "")
        print(
            f"| {title} | {r.published:,} | {r.applied:,} | {r.dead_lettered:,} | {r.lost} | "
            f"{r.double_counted} | {r.faults} | {r.seconds} |"
        )
    print(f"written {write_result('drills', {'drills': [asdict(r) for r in reports]})}")
    return 0 if all(r.ok for r in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
