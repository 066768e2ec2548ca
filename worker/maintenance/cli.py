"""One-shot maintenance commands: ``metrics-worker reconcile`` and ``metrics-worker prune``.

For a shell or system cron, doing what the RQ jobs do (same lock: a run while another holds it
is skipped and says so). Each prints one JSON line with what it did. Also runnable alone:
``python -m worker.maintenance.cli reconcile|prune ...``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from typing import Any

from contract import exits
from contract.durations import duration_arg
from worker.settings import DEFAULT_DATABASE_URL, DEFAULT_REDIS_URL, Settings


def _connections(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("connections (flags override the environment)")
    g.add_argument(
        "--database-url", metavar="URL", help=f"PostgreSQL [env DATABASE_URL, default {DEFAULT_DATABASE_URL}]"
    )
    g.add_argument(
        "--redis-url",
        metavar="URL",
        help=f"Redis (liveness hints, dead letters) [env REDIS_URL, default {DEFAULT_REDIS_URL}]",
    )
    g.add_argument(
        "--stream",
        metavar="NAME",
        help="stream name, from which the hint keys derive [env METRICS_STREAM, default metrics:events]",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG")


def add_maintenance_parsers(subparsers: Any) -> None:
    """Add ``reconcile`` and ``prune`` to a CLI's subparsers; each sets ``args.handler``."""
    rec = subparsers.add_parser(
        "reconcile",
        help="close sessions, rounds and forwards left open by agents that died",
        description="Reconcile stale running sessions/rounds and pending forwards (the seed's rules); "
        "rows with a live heartbeat or touched within the grace period are left alone.",
    )
    _connections(rec)
    rec.add_argument(
        "--grace",
        type=duration_arg("--grace"),
        metavar="DURATION",
        help="only rows idle longer than this [env METRICS_RECONCILE_GRACE, default 10m]",
    )
    rec.set_defaults(handler=reconcile)

    parser = subparsers.add_parser(
        "prune",
        help="delete rounds, forwards and counters older than the retention",
        description="Delete rounds (with their tool calls, adjusting their sessions), forwarded requests, "
        "sync-mismatch counters and stubs older than --older-than, expired counter "
        "bookkeeping and old dead letters, in bounded chunks.",
    )
    _connections(parser)
    parser.add_argument(
        "--older-than",
        type=duration_arg("--older-than"),
        metavar="DURATION",
        help="retention, e.g. 90d [env METRICS_RETENTION, default 90d]",
    )
    parser.add_argument(
        "--dedupe-window",
        type=duration_arg("--dedupe-window"),
        metavar="DURATION",
        help="keep counter event ids this long, at least 1d [env METRICS_DEDUPE_WINDOW, default 14d]",
    )
    parser.add_argument(
        "--dead-letter-retention",
        type=duration_arg("--dead-letter-retention"),
        metavar="DURATION",
        help="keep dead letters this long [env METRICS_DEAD_LETTER_RETENTION, default 30d]",
    )
    parser.set_defaults(handler=prune)

    url = subparsers.add_parser(
        "scheduler-url",
        help="print the plain Redis URL for rq cron / rq worker [env METRICS_SCHEDULER_REDIS_URL]",
        description="RQ does not support Redis Cluster: print METRICS_SCHEDULER_REDIS_URL, else REDIS_URL "
        "when that is not a cluster, else fail in one line.",
    )
    url.set_defaults(handler=scheduler_url)


def _settings(args: argparse.Namespace) -> Settings:
    return Settings.from_env(database_url=args.database_url, redis_url=args.redis_url, stream=args.stream)


def scheduler_url(args: argparse.Namespace) -> int:
    from worker.maintenance.scheduler import scheduler_redis_url

    print(scheduler_redis_url())
    return 0


def reconcile(args: argparse.Namespace) -> int:
    from worker.maintenance.jobs import run_reconcile

    settings = _settings(args)
    if args.grace is not None:
        settings = settings.with_(reconcile_grace=args.grace)
    return _report("reconcile", run_reconcile(settings))


def prune(args: argparse.Namespace) -> int:
    from worker.maintenance.jobs import run_prune

    settings = _settings(args)
    for flag, name in (
        ("older_than", "retention"),
        ("dedupe_window", "dedupe_window"),
        ("dead_letter_retention", "dead_letter_retention"),
    ):
        if getattr(args, flag) is not None:
            settings = settings.with_(**{name: getattr(args, flag)})
    return _report("prune", run_prune(settings))


def _report(job: str, details: dict[str, Any]) -> int:
    print(json.dumps({"job": job, **details}, sort_keys=True))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = exits.Parser(
        prog="python -m worker.maintenance.cli", description="Run one maintenance job once."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="JOB")
    add_maintenance_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    return exits.run("maintenance", lambda: int(args.handler(args)))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
