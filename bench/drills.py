"""Fault drills: a load through the real producer and worker processes while something breaks.

    python -m bench.drills [--events 20000] [--only sigkill,postgres,redis,malformed]

Each drill publishes a realistic history (plus, for one drill, 5% malformed entries), breaks
something at random moments while workers apply it, waits until the stream is drained, and
compares the database with the in-order result of exactly the events that were published:

    published, applied, dead-lettered, lost (must be 0), double-counted (must be 0)

The PostgreSQL and Redis drills restart servers of their own (embedded, under a temporary
folder), so they never disturb anything else on the machine. The suite runs short versions
(tests/drills/).
"""

from __future__ import annotations

import argparse
import json
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
from contract.codec import STREAM_FIELD
from contract.events import Event
from contract.keys import Keys
from producer.publisher import Publisher
from producer.settings import ProducerSettings
from worker.dev.embedded import EmbeddedServers
from worker.dev.scratch import wait_drained

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
    if kind in ("postgres", "redis"):
        embedded = EmbeddedServers(folder)
        try:
            pg = embedded.start_postgres() if kind == "postgres" else None
            rd = embedded.start_redis() if kind == "redis" else redis_url
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
    rng = random.Random(seed)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f"drill-{kind}-") as tmp:
        folder = Path(tmp)
        (folder / "logs").mkdir()
        with servers(kind, folder, database_url, redis_url) as (db_url, r_url, embedded):
            stream, group = f"drill:{uuid.uuid4().hex[:8]}:events", "drill-workers"
            env = dict(
                os.environ,
                DATABASE_URL=db_url,
                REDIS_URL=r_url,
                METRICS_STREAM=stream,
                METRICS_GROUP=group,
                METRICS_CLAIM_IDLE_MS="1000",
                METRICS_BLOCK_MS="200",
                METRICS_BATCH_SIZE="200",
            )
            if embedded is not None and kind == "postgres":
                with psycopg.connect(db_url, autocommit=True) as c:
                    from worker.schema import apply_schema

                    apply_schema(c)
            pool = Workers(env, workers, folder / "logs")
            publisher = Publisher(
                ProducerSettings(redis_url=r_url, stream=stream, spool_dir=folder / "spool")
            )
            malformed = 0
            raw = redis.Redis.from_url(r_url)
            done = threading.Event()
            fault_count = 0

            def publish() -> None:
                nonlocal malformed
                # A load over time, long enough for every fault to land in the middle of it.
                pace = max(3.0, 1.2 * faults) / max(1, len(events) // 100)
                for i, ev in enumerate(events):
                    publisher.publish(ev)
                    if kind == "malformed" and rng.random() < 0.05:
                        _xadd_retrying(raw, stream, {STREAM_FIELD: _garbage(rng, i)})
                        malformed += 1
                    if i % 100 == 0:
                        time.sleep(pace)
                publisher.flush(timeout=120)
                done.set()

            def break_things() -> None:
                nonlocal fault_count
                for _ in range(faults):
                    time.sleep(rng.uniform(0.3, 1.0))
                    fault_count += 1
                    _inject_fault(kind, rng, pool, db_url, embedded)

            threads = [threading.Thread(target=publish)]
            if kind != "malformed":
                threads.append(threading.Thread(target=break_things))
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout)
            assert done.is_set(), "the publisher did not finish"
            publisher.close()
            observer = redis.Redis.from_url(r_url, socket_timeout=2)
            wait_drained(observer, Keys(stream), group, timeout)
            observer.close()
            codes = pool.stop()
            dead = int(raw.xlen(f"{stream}:dead")) if raw.exists(f"{stream}:dead") else 0
            raw.close()
            with psycopg.connect(db_url) as conn:
                lost, double, identical = compare(conn, events)
            if not identical and lost == 0 and double == 0:
                lost = 1  # a difference the row counts do not show is still a failure
            # -SIGTERM: a replacement still starting up when it was asked to stop.
            if any(code not in (0, -signal.SIGKILL, -signal.SIGTERM) for code in codes):
                raise RuntimeError(f"a worker exited with {codes}; logs in {folder / 'logs'}")
    return Report(
        kind,
        len(events),
        malformed,
        len(events) - lost,
        dead,
        lost,
        double,
        fault_count,
        round(time.monotonic() - started, 1),
    )


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


def _garbage(rng: random.Random, i: int) -> bytes:
    return rng.choice(
        [
            b"not json",
            b"\xff\xfe",
            b"[]",
            b'{"type": "session.started"}',
            json.dumps({"v": 9, "event_id": f"bad{i}", "type": "x"}).encode(),
            json.dumps(
                {
                    "v": 1,
                    "event_id": f"bad{i}",
                    "type": "sync.mismatch",
                    "occurred_at": "yesterday",
                    "reason": "r",
                }
            ).encode(),
        ]
    )


def _terminate_backends(database_url: str) -> None:
    try:
        with psycopg.connect(database_url, autocommit=True, connect_timeout=3) as c:
            c.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name LIKE 'metrics-worker:%' AND pid <> pg_backend_pid()"
            )
    except psycopg.Error:
        pass


DRILLS: dict[str, str] = {
    "sigkill": "SIGKILL of workers at random moments",
    "postgres": "PostgreSQL connections terminated and the server restarted",
    "redis": "Redis (AOF on) restarted",
    "malformed": "5% malformed entries in the stream",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--only", default=",".join(DRILLS))
    args = parser.parse_args(argv)
    events = realistic_events(args.events, seed=5)
    reports = []
    for kind in args.only.split(","):
        print(f"drill {kind}: {DRILLS[kind]} ...", file=sys.stderr, flush=True)
        reports.append(run_drill(kind, events))
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
    print(f"written {write_result('drills', {'drills': [asdict(r) for r in reports]})}")
    return 0 if all(r.ok for r in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
