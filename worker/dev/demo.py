"""The demo: the whole pipeline on this machine, in about half a minute, then the results.

    python -m worker.dev.demo [--duration 30] [--agents 4] [--rate 400] [--data-dir .demo-data]

Uses DATABASE_URL / REDIS_URL when set; otherwise starts an embedded PostgreSQL and Redis under
the data folder (and says so). Starts two workers, the RQ cron scheduler and a maintenance
worker, runs the simulator, waits until the stream is drained, prints the summary, the per-model
table and the forward summary, and stops everything it started.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import redis

from contract.keys import DEFAULT_GROUP, Keys
from worker.dev.embedded import EmbeddedServers
from worker.dev.scratch import wait_drained, with_search_path
from worker.schema import apply_schema

BIN = Path(sys.executable).parent


def say(message: str) -> None:
    print(f"demo: {message}", file=sys.stderr, flush=True)


class Processes:
    """Children started by the demo; all of them are stopped (TERM, then KILL) on exit."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env = env
        self.logs = logs
        self.children: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, *argv: str) -> subprocess.Popen[bytes]:
        with open(self.logs / f"{name}.log", "wb") as log:
            proc = subprocess.Popen(
                argv, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.children.append((name, proc))
        return proc

    def stop(self) -> None:
        for _, proc in self.children:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for name, proc in self.children:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                say(f"{name} did not stop within 15 s: killing it")
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self.children.clear()


@contextlib.contextmanager
def servers(data_dir: Path) -> Iterator[tuple[str, str]]:
    database_url = os.environ.get("DATABASE_URL")
    redis_url = os.environ.get("REDIS_URL")
    embedded = EmbeddedServers(data_dir)
    try:
        if not database_url:
            database_url = embedded.start_postgres()
            say(
                "DATABASE_URL is not set: started an embedded PostgreSQL with its data in "
                f"{data_dir / 'postgres'}"
            )
        if not redis_url:
            redis_url = embedded.start_redis()
            say(
                f"REDIS_URL is not set: started an embedded Redis at {redis_url} "
                f"(data in {data_dir / 'redis'})"
            )
        yield database_url, redis_url
    finally:
        embedded.close()


def _delete_stream_keys(redis_url: str, stream: str) -> None:
    """The run's stream and what derives from it (dead letters, hints): not left in a given Redis."""
    with contextlib.suppress(redis.RedisError), redis.Redis.from_url(redis_url) as client:
        for key in client.scan_iter(f"{stream}*", count=1000):
            client.delete(key)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m worker.dev.demo",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--duration", type=float, default=30.0, help="seconds of simulated traffic (default 30)"
    )
    parser.add_argument("--agents", type=int, default=4, help="simulated agents (default 4)")
    parser.add_argument(
        "--rate", type=float, default=400.0, help="events per second, all agents (default 400)"
    )
    parser.add_argument("--workers", type=int, default=2, help="metrics workers (default 2)")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(".demo-data"),
        help="embedded servers' data and the demo's logs (default .demo-data)",
    )
    args = parser.parse_args(argv)

    data_dir = args.data_dir.resolve()
    logs = data_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    run = int(time.time())
    stream, schema = f"demo:{run}:events", f"demo_{run}"
    with servers(data_dir) as (server_url, redis_url):
        # A schema and a stream of its own: the totals shown are this run's, not those of every
        # earlier run (or of whatever else the given database holds).
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        database_url = with_search_path(server_url, schema)
        with psycopg.connect(database_url, autocommit=True) as conn:
            apply_schema(conn)
        env = dict(
            os.environ,
            DATABASE_URL=database_url,
            REDIS_URL=redis_url,
            METRICS_STREAM=stream,
            METRICS_GROUP=DEFAULT_GROUP,
            METRICS_SPOOL_DIR=str(data_dir / "spool"),
            METRICS_RECONCILE_GRACE="10m",
            PYTHONUNBUFFERED="1",
        )
        procs = Processes(env, logs)
        try:
            for i in range(args.workers):
                procs.start(
                    f"worker-{i}", str(BIN / "metrics-worker"), "run", "--consumer", f"demo-worker-{i}"
                )
            procs.start("rq-cron", str(BIN / "rq"), "cron", "worker.maintenance.cron", "--url", redis_url)
            procs.start("rq-maintenance", str(BIN / "rq"), "worker", "maintenance", "--url", redis_url)
            say(
                f"started {args.workers} workers, the RQ cron scheduler and a maintenance worker "
                f"(logs in {logs})"
            )
            say(f"simulating {args.agents} agents at {args.rate:.0f} events/s for {args.duration:.0f} s")
            simulate = subprocess.run(
                [
                    str(BIN / "metrics-producer"),
                    "simulate",
                    "--agents",
                    str(args.agents),
                    "--sessions",
                    "100000",
                    "--rate",
                    str(args.rate),
                    "--duration",
                    str(args.duration),
                ],
                env=env,
                check=False,
            )
            if simulate.returncode != 0:
                say(f"the simulator failed with exit status {simulate.returncode}")
                return 1
            client = redis.Redis.from_url(redis_url)
            wait_drained(client, Keys(stream), DEFAULT_GROUP, timeout=120)
            client.close()
            say("stream drained; the results:")
            for query in (["summary"], ["by-model"], ["forward-summary"]):
                print(flush=True)
                shown = subprocess.run([str(BIN / "metrics-worker"), "query", *query], env=env, check=False)
                if shown.returncode != 0:
                    return 1
            dead = [name for name, p in procs.children if p.poll() is not None]
            if dead:
                say(f"these stopped early (see their logs): {', '.join(dead)}")
                return 1
            say(
                f"this run's data stays in PostgreSQL schema {schema}; to query it: "
                f"DATABASE_URL='{database_url}' metrics-worker query sessions"
            )
        finally:
            procs.stop()
            _delete_stream_keys(redis_url, stream)
            say("stopped every process the demo started")
    return 0


if __name__ == "__main__":
    sys.exit(main())
