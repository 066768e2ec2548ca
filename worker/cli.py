"""``metrics-worker``: run workers, inspect dead letters, query, and run maintenance.

Every flag has an environment variable; the flag wins. Errors a person makes get one line and
exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any

import psycopg
import redis

from worker.settings import Settings

log = logging.getLogger("worker")


def _common(parser: argparse.ArgumentParser, *, database: bool = True, streams: bool = True) -> None:
    """The connection flags a command uses (and only those: a flag shown must do something)."""
    g = parser.add_argument_group("connections (flags override the environment)")
    if database:
        g.add_argument("--database-url", help="PostgreSQL URL [env DATABASE_URL]")
    if streams:
        g.add_argument("--redis-url", help="Redis URL [env REDIS_URL]")
        g.add_argument("--stream", help="stream name [env METRICS_STREAM, default metrics:events]")
        g.add_argument("--shards", type=int, help="number of stream shards [env METRICS_SHARDS, default 1]")
        g.add_argument("--group", help="consumer group [env METRICS_GROUP, default metrics-workers]")
    g.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="metrics-worker", description="Apply agent telemetry events from Redis streams to PostgreSQL."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser(
        "run", help="consume the stream and apply events (one worker; start N for N workers)"
    )
    _common(run)
    run.add_argument(
        "--burst",
        action="store_true",
        help="exit 0 once nothing is undelivered or pending (stale pending entries are claimed first)",
    )
    run.add_argument(
        "--consumer", help="consumer name, unique per worker [env METRICS_CONSUMER, default host-pid]"
    )
    run.add_argument(
        "--batch-size", type=int, help="entries per batch [env METRICS_BATCH_SIZE, default 1000]"
    )
    run.add_argument(
        "--block-ms", type=int, help="how long a read waits for entries [env METRICS_BLOCK_MS, default 2000]"
    )
    run.add_argument(
        "--claim-idle-ms",
        type=int,
        help="claim entries pending this long on another consumer [env METRICS_CLAIM_IDLE_MS, default 30000]",
    )
    run.add_argument(
        "--max-deliveries",
        type=int,
        help="deliveries before an entry is isolated and, failing, dead-lettered "
        "[env METRICS_MAX_DELIVERIES, default 5]",
    )
    run.add_argument(
        "--metrics-port", type=int, help="serve Prometheus metrics on this port [env METRICS_PORT]"
    )

    schema = sub.add_parser(
        "schema",
        help="apply schema.sql (idempotent, under an advisory lock), then back-fill the roll-ups "
        "of a database written by a version without them (a chunk per transaction, next to running workers)",
    )
    _common(schema, streams=False)

    dlq = sub.add_parser("dlq", help="inspect and replay dead letters")
    dsub = dlq.add_subparsers(dest="dlq_command", required=True, metavar="ACTION")
    dl = dsub.add_parser("list", help="list dead letters (oldest first)")
    dl.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
    dl.add_argument("--json", action="store_true", help="print JSON instead of text")
    ds = dsub.add_parser("show", help="one dead letter with its payload")
    ds.add_argument("id")
    ds.add_argument("--json", action="store_true", help="print JSON instead of text")
    for name, what in (("redrive", "re-publish to the stream they came from"), ("purge", "delete")):
        p = dsub.add_parser(name, help=f"{what} the given dead letters, or --all")
        p.add_argument("ids", nargs="*")
        p.add_argument("--all", action="store_true")
    for p in (dl, ds, *(dsub.choices[n] for n in ("redrive", "purge"))):
        _common(p, database=False)

    status = sub.add_parser("status", help="the group's backlog per stream, its consumers, the dead letters")
    status.add_argument("--json", action="store_true", help="print JSON instead of text")
    _common(status, database=False)

    for add in _optional_parsers():
        add(sub)
    return parser


def _optional_parsers() -> list[Callable[[Any], object]]:
    adders: list[Callable[[Any], object]] = []
    try:
        from worker.read.cli import add_query_parser

        adders.append(add_query_parser)
    except ImportError:  # pragma: no cover - read side not installed
        pass
    try:
        from worker.maintenance.cli import add_maintenance_parsers

        adders.append(add_maintenance_parsers)
    except ImportError:  # pragma: no cover
        pass
    return adders


def settings_from(args: argparse.Namespace) -> Settings:
    return Settings.from_env(
        database_url=getattr(args, "database_url", None),
        redis_url=getattr(args, "redis_url", None),
        stream=getattr(args, "stream", None),
        shards=getattr(args, "shards", None),
        group=getattr(args, "group", None),
        consumer=getattr(args, "consumer", None),
        batch_size=getattr(args, "batch_size", None),
        block_ms=getattr(args, "block_ms", None),
        claim_idle_ms=getattr(args, "claim_idle_ms", None),
        max_deliveries=getattr(args, "max_deliveries", None),
        metrics_port=getattr(args, "metrics_port", None),
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if getattr(args, "verbose", False) else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    try:
        return _dispatch(args)
    except (ValueError, KeyError) as exc:
        print(f"metrics-worker: {exc.args[0] if isinstance(exc, KeyError) else exc}", file=sys.stderr)
        return 2
    except redis.ResponseError as exc:  # Redis answered: the request, not the URL, is at fault
        print(f"metrics-worker: Redis refused it: {exc}", file=sys.stderr)
        return 2
    except redis.RedisError as exc:
        print(f"metrics-worker: Redis: {exc} (check --redis-url / REDIS_URL)", file=sys.stderr)
        return 2
    except psycopg.OperationalError as exc:
        print(
            f"metrics-worker: PostgreSQL: {exc} (check --database-url / DATABASE_URL)".strip(),
            file=sys.stderr,
        )
        return 2


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "query":
        from worker.read.cli import run_query

        return int(run_query(args))
    settings = settings_from(args)
    if args.command == "run":
        from worker.ingest.consumer import Worker, tune_gc_for_batches

        if settings.metrics_port:
            from prometheus_client import start_http_server

            try:
                start_http_server(settings.metrics_port)
            except OSError as exc:
                raise ValueError(
                    f"--metrics-port / METRICS_PORT: cannot serve on port "
                    f"{settings.metrics_port}: {exc.strerror}"
                ) from None
        tune_gc_for_batches()
        return Worker(settings).run(burst=args.burst)
    if args.command == "schema":
        from worker.rollups import backfill, pending
        from worker.schema import apply_schema

        with psycopg.connect(settings.database_url, autocommit=True) as conn:
            apply_schema(conn, force=True)  # also repairs what was dropped since it was applied
            print("schema applied")
            if pending(conn):  # a database written by a version without roll-ups: count its rows
                counted = backfill(
                    conn, progress=lambda entity, n: print(f"roll-ups: {entity} {n:,} rows counted")
                )
                print("roll-ups back-filled: " + ", ".join(f"{k} {v:,}" for k, v in counted.items()))
        return 0
    if args.command == "dlq":
        return _dlq(args, settings)
    if args.command == "status":
        return _status(args, settings)
    from worker.maintenance.cli import run_maintenance

    return int(run_maintenance(args, settings))


def _status(args: argparse.Namespace, settings: Settings) -> int:
    from worker.ingest.deadletter import DeadLetters
    from worker.ingest.stream import StreamClient

    client = redis.Redis.from_url(settings.redis_url)
    shards = StreamClient(client, settings.keys, settings.group, "status").status()
    dead = DeadLetters(client, settings.keys.dead_letters).count()
    if args.json:
        print(
            json.dumps(
                {
                    "group": settings.group,
                    "dead_letters": dead,
                    "streams": [
                        {
                            "stream": s.stream,
                            "length": s.length,
                            "undelivered": s.undelivered,
                            "pending": s.pending,
                            "consumers": [{"name": n, "pending": p, "idle_ms": i} for n, p, i in s.consumers],
                        }
                        for s in shards
                    ],
                },
                indent=2,
            )
        )
        return 0
    known = [s.undelivered for s in shards if s.undelivered is not None]
    total = sum(known) if len(known) == len(shards) else None
    print(
        f"group {settings.group}: {_how_many(total)} undelivered, {sum(s.pending for s in shards)} pending, "
        f"{dead} dead letters in {settings.keys.dead_letters}"
    )
    for s in shards:
        print(
            f"  {s.stream}: {s.length} entries, {_how_many(s.undelivered)} undelivered, {s.pending} pending"
        )
        for name, pending, idle in sorted(s.consumers):
            print(f"    {name}: {pending} pending, idle {idle / 1000:.1f}s")
    return 0


def _how_many(n: int | None) -> str:
    return "some (Redis < 7 does not count them)" if n is None else str(n)


def _dlq(args: argparse.Namespace, settings: Settings) -> int:
    from worker.ingest.deadletter import DeadLetters

    letters = DeadLetters(redis.Redis.from_url(settings.redis_url), settings.keys.dead_letters)
    action = args.dlq_command
    if action == "list":
        rows = letters.list(count=args.limit)
        if args.json:
            print(
                json.dumps([{k: v for k, v in r.as_dict().items() if k != "payload"} for r in rows], indent=2)
            )
        else:
            print(f"{letters.count()} dead letters in {letters.key}")
            for r in rows:
                print(f"{r.id}  {r.failed_at}  {r.stream}/{r.entry_id}  x{r.deliveries}  {r.reason[:100]}")
        return 0
    if action == "show":
        letter = letters.get(args.id)
        if letter is None:
            raise KeyError(f"no dead letter with id {args.id} in {letters.key}")
        data = letter.as_dict()
        if args.json:
            print(json.dumps(data, indent=2))
        else:
            for key, value in data.items():
                print(f"{key:>10}: {value}")
        return 0
    if not args.ids and not args.all:
        raise ValueError(f"dlq {action}: name the dead letters to {action}, or pass --all")
    ids = None if args.all else list(args.ids)
    if action == "redrive":
        n = letters.redrive(ids, default_stream=settings.keys.streams[0])
        print(f"redrove {n} dead letters to their streams")
    else:
        n = letters.purge(ids)
        print(f"purged {n} dead letters")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
