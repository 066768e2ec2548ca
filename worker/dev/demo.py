"""The demo: the whole pipeline on this machine, in about half a minute, then the results.

    python -m worker.dev.demo [--duration 30] [--agents 4] [--rate 400] [--data-dir .demo-data]
    python -m worker.dev.demo --serve [--schema demo_...]     # keep it all up until Ctrl-C

Uses DATABASE_URL / REDIS_URL when set; otherwise starts an embedded PostgreSQL and Redis under
the data folder (and says so). Starts two workers, the RQ cron scheduler and a maintenance
worker, runs the simulator, waits until the stream is drained, prints the summary, the per-model
table and the forward summary, and stops everything it started. With --serve it also starts
metrics-api, metrics-otlp and a slow steady simulator, prints the URLs and the commands to look at the data,
and keeps everything running until Ctrl-C (worker/dev/serve.py).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shlex
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import redis
from redis.exceptions import RedisClusterException

from contract import exits
from contract.connect import connect
from contract.keys import DEFAULT_GROUP, Keys
from worker.dev.embedded import EmbeddedServers, free_port
from worker.dev.processes import BIN, Processes, hold_interrupts, run_in_foreground, say
from worker.dev.scratch import wait_drained, with_search_path
from worker.dev.serve import exports, script, serve, token_hint
from worker.maintenance.scheduler import scheduler_redis_url
from worker.schema import apply_schema

SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


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
        hold_interrupts()
        embedded.close()


def _delete_stream_keys(redis_url: str, stream: str) -> None:
    """The run's stream and what derives from it (dead letters, hints): not left in a given Redis."""
    with contextlib.suppress(redis.RedisError, RedisClusterException), connect(redis_url) as client:
        for key in client.scan_iter(f"{stream}*", count=1000):
            client.delete(key)


def main(argv: list[str] | None = None) -> int:
    parser = exits.Parser(
        prog="python -m worker.dev.demo",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=30.0,
        help="seconds of simulated traffic (default 30; not with --serve)",
    )
    parser.add_argument("--agents", type=int, default=4, help="simulated agents (default 4)")
    parser.add_argument(
        "--rate",
        type=float,
        help="at most this many events per second, all agents (default 400; 50 with --serve)",
    )
    parser.add_argument("--workers", type=int, default=2, help="metrics workers (default 2)")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(".demo-data"),
        help="embedded servers' data and the demo's logs (default .demo-data)",
    )
    parser.add_argument(
        "--serve",
        action="store_true",
        help="keep the pipeline, a slow simulator, metrics-api and metrics-otlp running until Ctrl-C, "
        "and print the commands to look at it",
    )
    parser.add_argument(
        "--schema",
        help="PostgreSQL schema to write into (default: a new demo_<unix time>; give an earlier "
        "run's to look at its data again)",
    )
    parser.add_argument("--api-port", type=int, help="metrics-api port with --serve (default: a free one)")
    args = parser.parse_args(argv)
    if args.schema is not None and not SCHEMA_NAME.fullmatch(args.schema):
        parser.error(f"--schema: {args.schema!r} is not a plain lower-case PostgreSQL name")
    if args.agents < 1 or args.workers < 1 or (args.rate is not None and args.rate <= 0):
        parser.error("--agents and --workers must be at least 1, --rate above 0")
    if args.api_port is not None and not 1 <= args.api_port <= 65535:
        parser.error(f"--api-port: {args.api_port} is not a port (1-65535)")

    try:
        return _run(args)
    except KeyboardInterrupt:  # Ctrl-C before --serve's wait (or during a plain run): cleaned up
        say("interrupted (Ctrl-C)")
        return 130


def _run(args: argparse.Namespace) -> int:
    port = None
    if args.serve:  # the first thing said: where to look
        port = args.api_port or free_port()
        say(
            f"the dashboard will be at http://127.0.0.1:{port}/{token_hint(os.environ)} once the "
            "pipeline is up; Ctrl-C stops everything"
        )
    data_dir = args.data_dir.resolve()
    logs = data_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    schema = args.schema or f"demo_{int(time.time())}"
    stream = f"{schema}:events"
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
            rq_url = scheduler_redis_url(env)  # RQ needs a plain Redis: not a cluster's
            procs.start("rq-cron", str(BIN / "rq"), "cron", "worker.maintenance.cron", "--url", rq_url)
            procs.start("rq-maintenance", str(BIN / "rq"), "worker", "maintenance", "--url", rq_url)
            say(
                f"started {args.workers} workers, the RQ cron scheduler and a maintenance worker "
                f"(logs in {logs})"
            )
            if port is not None:
                return serve(procs, env, schema, args.agents, args.rate or 50.0, port)
            return _run_once(args, procs, env, schema, embedded=not os.environ.get("DATABASE_URL"))
        finally:
            hold_interrupts()
            procs.stop()
            _delete_stream_keys(redis_url, stream)
            say("stopped every process the demo started")


def _run_once(
    args: argparse.Namespace, procs: Processes, env: dict[str, str], schema: str, embedded: bool
) -> int:
    rate, agents = args.rate or 400.0, args.agents
    say(
        f"simulating {agents} agents for {args.duration:.0f} s at {rate:.0f} events/s: two hours of "
        "their history, sessions of minutes, rounds of seconds"
    )
    simulate = run_in_foreground(
        [str(BIN / "metrics-producer"), "simulate", "--agents", str(agents), "--sessions", "100000",
         "--rate", str(rate), "--duration", str(args.duration), "--backfill", "2h"],
        env,
    )  # fmt: skip
    if simulate != 0:
        say(f"the simulator failed with exit status {simulate}")
        return 1
    with contextlib.closing(connect(env["REDIS_URL"])) as client:
        wait_drained(client, Keys(env["METRICS_STREAM"]), DEFAULT_GROUP, timeout=120)
    say("stream drained; the results:")
    for query in (["summary"], ["by-model"], ["forward-summary"]):
        print(flush=True)
        if run_in_foreground([str(BIN / "metrics-worker"), "query", *query], env) != 0:
            return 1
    dead = procs.stopped()
    if dead:
        say(f"these stopped early (see their logs): {', '.join(dead)}")
        return 1
    if embedded:  # its server stops with the demo: the way back is the demo itself
        again = f"python3 tasks.py demo --serve --schema {schema}"
        if args.data_dir != Path(".demo-data"):
            again += f" --data-dir {shlex.quote(str(args.data_dir))}"
        say(
            f"this run's data stays in PostgreSQL schema {schema}; to bring it back up and look at "
            f"it: {again}"
        )
    else:
        say(
            f"this run's data stays in PostgreSQL schema {schema}; to query it: "
            f"{exports(env, 'DATABASE_URL')} && {script('metrics-worker')} query sessions"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
