"""``metrics-worker``: run workers, inspect dead letters, query, and run maintenance.

Every flag has an environment variable; the flag wins. Each command is a handler set on its
subparser (``args.handler``); errors are one line and the exit code of contract/exits.py (README,
"Exit codes"), never a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import psycopg
from rich.console import Console

from contract import exits
from contract.connect import Client, connect, describe, placed
from contract.durations import duration_arg
from contract.exits import NotFound
from contract.keys import Keys
from worker.ingest.deadletter import DeadLetters
from worker.maintenance.cli import add_maintenance_parsers
from worker.read.cli import add_query_parser
from worker.read.tables import Column, Grid, print_tables, terminal_width
from worker.settings import DEFAULT_DATABASE_URL, DEFAULT_REDIS_URL, Settings
from worker.status import read_status

log = logging.getLogger("worker")


def _common(parser: argparse.ArgumentParser, *, database: bool = True, streams: bool = True) -> None:
    """The connection flags a command uses (and only those: a flag shown must do something)."""
    g = parser.add_argument_group("connections (flags override the environment)")
    if database:
        g.add_argument(
            "--database-url",
            metavar="URL",
            help=f"PostgreSQL [env DATABASE_URL, default {DEFAULT_DATABASE_URL}]",
        )
    if streams:
        g.add_argument(
            "--redis-url", metavar="URL", help=f"Redis [env REDIS_URL, default {DEFAULT_REDIS_URL}]"
        )
        g.add_argument(
            "--stream", metavar="NAME", help="stream name [env METRICS_STREAM, default metrics:events]"
        )
        g.add_argument(
            "--shards", type=int, metavar="K", help="number of stream shards [env METRICS_SHARDS, default 1]"
        )
        g.add_argument(
            "--group", metavar="NAME", help="consumer group [env METRICS_GROUP, default metrics-workers]"
        )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG")


def _command(sub: Any, name: str, summary: str, description: str) -> argparse.ArgumentParser:
    """A subcommand: ``summary`` in the list of commands, ``description`` on its own --help."""
    parser: argparse.ArgumentParser = sub.add_parser(name, help=summary, description=description)
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = exits.Parser(
        prog="metrics-worker",
        description="Apply agent telemetry events from Redis streams to PostgreSQL, look at them, "
        "and run the maintenance. Exit codes: 0 done, 1 failed, 2 a mistake in the command, "
        "3 a server away (README, Exit codes).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = _command(
        sub,
        "run",
        "consume the stream and apply events (one worker; start N for N workers)",
        "Consume the stream as one worker of the consumer group and apply its events to PostgreSQL, "
        "until SIGTERM or Ctrl-C (which finish the batch in hand). Start N of them for N workers. "
        "Applies schema.sql first if it is missing.",
    )
    _common(run)
    run.add_argument(
        "--burst",
        action="store_true",
        help="exit 0 once nothing is undelivered or pending (stale pending entries are claimed first)",
    )
    run.add_argument(
        "--give-up-after",
        type=duration_arg("--give-up-after"),
        default=timedelta(minutes=1),
        metavar="DURATION",
        help="with --burst: exit 3 when Redis or PostgreSQL stays unreachable this long, naming "
        "which (e.g. 30s, 5m; default 1m)",
    )
    run.add_argument(
        "--consumer",
        metavar="NAME",
        help="consumer name, unique per worker [env METRICS_CONSUMER, default host-pid]",
    )
    run.add_argument(
        "--batch-size", type=int, metavar="N", help="entries per batch [env METRICS_BATCH_SIZE, default 1000]"
    )
    run.add_argument(
        "--block-ms",
        type=int,
        metavar="MS",
        help="how long a read waits for entries [env METRICS_BLOCK_MS, default 2000]",
    )
    run.add_argument(
        "--claim-idle-ms",
        type=int,
        metavar="MS",
        help="claim entries pending this long on another consumer [env METRICS_CLAIM_IDLE_MS, default 30000]",
    )
    run.add_argument(
        "--max-deliveries",
        type=int,
        metavar="N",
        help="deliveries before an entry is isolated and, failing, dead-lettered "
        "[env METRICS_MAX_DELIVERIES, default 5]",
    )
    run.add_argument(
        "--max-event-bytes",
        type=int,
        metavar="N",
        help="larger entries are dead-lettered unread [env METRICS_MAX_EVENT_BYTES, default 1048576]",
    )
    run.add_argument(
        "--metrics-port",
        type=int,
        metavar="PORT",
        help="serve Prometheus metrics on this port [env METRICS_PORT, default none]",
    )
    run.set_defaults(handler=_run)

    schema = _command(
        sub,
        "schema",
        "create the tables (idempotent): run it once on a new database",
        "Apply schema.sql: create the tables and indexes that are missing, and repair what was "
        "dropped. Idempotent, under an advisory lock (workers starting at once are safe). Then "
        "back-fill the roll-ups of a database written by a version without them (a chunk per "
        "transaction, next to running workers).",
    )
    _common(schema, streams=False)
    schema.add_argument(
        "--reader",
        metavar="ROLE",
        help="also create ROLE if missing and let it SELECT and nothing else: the role for metrics-api; "
        "its password [env METRICS_READER_PASSWORD, default none]",
    )
    schema.set_defaults(handler=_schema)

    dlq = _command(
        sub,
        "dlq",
        "inspect and replay dead letters",
        "Entries the workers could not apply (not JSON, failing the contract, refused by PostgreSQL) "
        "wait in the dead-letter stream with their payload and the reason: list, show, redrive, purge.",
    )
    dsub = dlq.add_subparsers(dest="dlq_command", required=True, metavar="ACTION")
    dl = _command(dsub, "list", "list dead letters (oldest first)", "List dead letters, oldest first.")
    dl.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
    dl.add_argument("--json", action="store_true", help="print JSON instead of a table")
    dl.set_defaults(handler=_dlq_list)
    ds = _command(dsub, "show", "one dead letter with its payload", "One dead letter, with its payload.")
    ds.add_argument("id", help="the dead letter's id, as dlq list shows it")
    ds.add_argument("--json", action="store_true", help="print JSON instead of text")
    ds.set_defaults(handler=_dlq_show)
    for name, summary, handler in (
        ("redrive", "re-publish dead letters to the streams they came from", _dlq_redrive),
        ("purge", "delete dead letters", _dlq_purge),
    ):
        p = _command(
            dsub, name, summary, f"{summary[0].upper()}{summary[1:]}: the ids given, or all with --all."
        )
        p.add_argument("ids", nargs="*", metavar="ID", help="dead letter ids, as dlq list shows them")
        p.add_argument("--all", action="store_true", help=f"{name} every dead letter")
        p.set_defaults(handler=handler)
    for p in dsub.choices.values():
        _common(p, database=False)

    status = _command(
        sub,
        "status",
        "the group's backlog per stream, its consumers, the dead letters",
        "Per stream: entries, undelivered, pending; each consumer's pending entries and idle time; "
        "the number of dead letters. Is the pipeline keeping up?",
    )
    status.add_argument("--json", action="store_true", help="print JSON instead of text")
    _common(status, database=False)
    status.set_defaults(handler=_status)

    add_query_parser(sub)
    add_maintenance_parsers(sub)
    return parser


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
        max_event_bytes=getattr(args, "max_event_bytes", None),
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
    return exits.run("metrics-worker", lambda: int(args.handler(args)))


def _run(args: argparse.Namespace) -> int:
    from worker.ingest.consumer import Worker, tune_gc_for_batches

    settings = settings_from(args)
    if settings.metrics_port:
        from prometheus_client import start_http_server

        try:
            start_http_server(settings.metrics_port)
        except OSError as exc:
            raise ValueError(
                f"--metrics-port / METRICS_PORT: cannot serve on port {settings.metrics_port}: {exc.strerror}"
            ) from None
    tune_gc_for_batches()
    return Worker(settings, give_up_after=args.give_up_after.total_seconds()).run(burst=args.burst)


def _schema(args: argparse.Namespace) -> int:
    from worker.backfill import backfill, pending
    from worker.schema import apply_schema, grant_reader

    with psycopg.connect(settings_from(args).database_url, autocommit=True) as conn:
        apply_schema(conn, force=True)  # also repairs what was dropped since it was applied
        print("schema applied")
        if pending(conn):  # a database written by a version without roll-ups: count its rows
            counted = backfill(
                conn, progress=lambda entity, n: print(f"roll-ups: {entity} {n:,} rows counted")
            )
            print("roll-ups back-filled: " + ", ".join(f"{k} {v:,}" for k, v in counted.items()))
        if args.reader:
            created = grant_reader(conn, args.reader)
            print(f"role {args.reader} {'created and ' if created else ''}granted SELECT only")
    return 0


def _status(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    status = read_status(_connect(settings, "status"), settings.keys, settings.group)
    if args.json:  # the same document as the API's /v1/pipeline
        print(status.model_dump_json(indent=2))
        return 0
    letters = status.dead_letter_streams
    where = letters[0] if len(letters) == 1 else f"{len(letters)} dead-letter streams"
    print(
        f"group {settings.group}: {_how_many(status.undelivered)} undelivered, {status.pending} pending, "
        f"{status.dead_letters} dead letters in {where}; "
        f"lag {status.lag_seconds:.1f}s (the oldest waiting entry's age)"
    )
    for s in status.streams:
        finished = "" if s.acknowledged is None else f", {s.acknowledged} acknowledged"
        print(
            f"  {s.stream}: {_how_many(s.undelivered)} undelivered, {s.pending} pending{finished}, "
            f"lag {s.lag_seconds:.1f}s; {s.length} kept in the stream"
        )
        for c in sorted(s.consumers, key=lambda c: c.name):
            print(f"    {c.name}: {c.pending} pending, idle {c.idle_ms / 1000:.1f}s")
    return 0


def _how_many(n: int | None) -> str:
    return "some (Redis < 7 does not count them)" if n is None else str(n)


def _connect(settings: Settings, command: str) -> Client:
    """The data Redis (one server or a cluster), named with its mode in the start-up log line."""
    client = connect(settings.redis_url, socket_timeout=30, socket_connect_timeout=5)
    log.info("%s: %s", command, describe(client))
    return client


def _dead_letters(settings: Settings, command: str) -> tuple[DeadLetters, Keys]:
    """Every dead-letter stream (one per shard), and the keys as placed where they live."""
    client = _connect(settings, f"dlq {command}")
    keys = placed(settings.keys, client)
    return DeadLetters(client, keys.dead_letter_streams), keys


def _dlq_list(args: argparse.Namespace) -> int:
    letters, _ = _dead_letters(settings_from(args), "list")
    rows = letters.list(count=args.limit)
    if args.json:
        print(json.dumps([{k: v for k, v in r.as_dict().items() if k != "payload"} for r in rows], indent=2))
    else:
        columns = (
            Column("id", "label"),
            Column("failed at", "time", 2),
            Column("from (stream/entry)", "text", 1),
            Column("deliveries", "number", 3),
            Column("reason", "text"),
        )
        grid = Grid(
            f"{letters.count()} dead letters in {letters.key}",
            columns,
            tuple(
                (r.id, _when(r.failed_at), f"{r.stream}/{r.entry_id}", r.deliveries, r.reason) for r in rows
            ),
        )
        console = Console()
        print_tables([grid], console, terminal_width(console))
    return 0


def _when(stamp: str) -> datetime | str:
    try:
        return datetime.fromisoformat(stamp)
    except ValueError:  # written by hand, or by something else: shown as it is
        return stamp


def _dlq_show(args: argparse.Namespace) -> int:
    letters, _ = _dead_letters(settings_from(args), "show")
    letter = letters.get(args.id)
    if letter is None:
        raise NotFound(f"no dead letter with id {args.id} in {letters.key}")
    data = letter.as_dict()
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        for key, value in data.items():
            print(f"{key:>10}: {value}")
    return 0


def _chosen(args: argparse.Namespace) -> list[str] | None:
    if not args.ids and not args.all:
        raise ValueError(
            f"dlq {args.dlq_command}: name the dead letters to {args.dlq_command}, or pass --all"
        )
    return None if args.all else list(args.ids)


def _dlq_redrive(args: argparse.Namespace) -> int:
    ids, settings = _chosen(args), settings_from(args)
    letters, keys = _dead_letters(settings, "redrive")
    n = letters.redrive(ids, default_stream=keys.streams[0])
    print(f"redrove {n} dead letters to their streams")
    return 0


def _dlq_purge(args: argparse.Namespace) -> int:
    n = _dead_letters(settings_from(args), "purge")[0].purge(_chosen(args))
    print(f"purged {n} dead letters")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
