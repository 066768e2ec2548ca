"""``metrics-worker dlq``: what an operator does with dead letters (list, show, redrive, purge).

The letters themselves are worker/ingest/deadletter.py.

Its ``configure_parser`` adds the sub-command to the top parser (worker/cli.py); each action's
handler is in ``args.handler``.
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from typing import Any

from rich.console import Console

from contract.connect import placed
from contract.exits import NotFound
from contract.keys import Keys
from worker.flags import REDIS, add_connections, settings_from
from worker.ingest.cli import data_redis
from worker.ingest.deadletter import DeadLetters
from worker.settings import Connections
from worker.tables import Column, Grid, print_tables, terminal_width


def configure_parser(sub: Any) -> None:
    dlq: argparse.ArgumentParser = sub.add_parser(
        "dlq",
        help="inspect and replay dead letters",
        description="Entries the workers could not apply (not JSON, failing the contract, refused by "
        "PostgreSQL) wait in the dead-letter stream with their payload and the reason: list, show, "
        "redrive, purge.",
    )
    actions = dlq.add_subparsers(dest="dlq_command", required=True, metavar="ACTION")
    listing = actions.add_parser(
        "list", help="list dead letters (oldest first)", description="List dead letters, oldest first."
    )
    listing.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    listing.set_defaults(handler=list_letters)
    show = actions.add_parser(
        "show", help="one dead letter with its payload", description="One dead letter, with its payload."
    )
    show.add_argument("id", help="the dead letter's id, as dlq list shows it")
    show.add_argument("--json", action="store_true", help="print JSON instead of text")
    show.set_defaults(handler=show_letter)
    for name, summary, handler in (
        ("redrive", "re-publish dead letters to the streams they came from", redrive),
        ("purge", "delete dead letters", purge),
    ):
        p = actions.add_parser(
            name,
            help=summary,
            description=f"{summary[0].upper()}{summary[1:]}: the ids given, or all with --all.",
        )
        p.add_argument("ids", nargs="*", metavar="ID", help="dead letter ids, as dlq list shows them")
        p.add_argument("--all", action="store_true", help=f"{name} every dead letter")
        p.set_defaults(handler=handler)
    for p in actions.choices.values():
        add_connections(p, REDIS)


def _dead_letters(args: argparse.Namespace) -> tuple[DeadLetters, Keys]:
    """Every dead-letter stream (one per shard), and the keys as placed where they live."""
    settings = settings_from(args, Connections)
    client = data_redis(settings, f"dlq {args.dlq_command}")
    keys = placed(settings.keys, client)
    return DeadLetters(client, keys.dead_letter_streams), keys


def list_letters(args: argparse.Namespace) -> int:
    letters, _ = _dead_letters(args)
    rows = letters.list(count=args.limit)
    if args.json:
        print(json.dumps([{k: v for k, v in r.as_dict().items() if k != "payload"} for r in rows], indent=2))
        return 0
    columns = (
        Column("id", "label"),
        Column("failed at", "time", 2),
        Column("from (stream/entry)", "text", 1),
        Column("deliveries", "number", 3),
        Column("reason", "prose"),
    )
    grid = Grid(
        f"{letters.count()} dead letters in {letters.key}",
        columns,
        tuple((r.id, _when(r.failed_at), f"{r.stream}/{r.entry_id}", r.deliveries, r.reason) for r in rows),
    )
    console = Console()
    print_tables([grid], console, terminal_width(console))
    return 0


def _when(stamp: str) -> datetime | str:
    try:
        return datetime.fromisoformat(stamp)
    except ValueError:  # written by hand, or by something else: shown as it is
        return stamp


def show_letter(args: argparse.Namespace) -> int:
    letters, _ = _dead_letters(args)
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


def redrive(args: argparse.Namespace) -> int:
    ids = _chosen(args)
    letters, keys = _dead_letters(args)
    n = letters.redrive(ids, default_stream=keys.streams[0])
    print(f"redrove {n} dead letters to their streams")
    return 0


def purge(args: argparse.Namespace) -> int:
    ids = _chosen(args)
    n = _dead_letters(args)[0].purge(ids)
    print(f"purged {n} dead letters")
    return 0
