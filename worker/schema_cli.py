"""``metrics-worker schema``: make a database ready for every process (worker/schema.py).

Its ``configure_parser`` adds the sub-command to the top parser (worker/cli.py).
"""

from __future__ import annotations

import argparse
from typing import Any

from worker.database import connect
from worker.flags import DATABASE, add_connections, settings_from
from worker.settings import Connections


def configure_parser(sub: Any) -> None:
    schema: argparse.ArgumentParser = sub.add_parser(
        "schema",
        help="create the tables (idempotent): run it once on a new database",
        description="Apply schema.sql: create the tables and indexes that are missing, and repair what "
        "was dropped. Idempotent, under an advisory lock (workers starting at once are safe). Then "
        "back-fill the roll-ups of a database written by a version without them (a chunk per "
        "transaction, next to running workers).",
    )
    add_connections(schema, DATABASE)
    schema.add_argument(
        "--reader",
        metavar="ROLE",
        help="also create ROLE if missing and let it SELECT and nothing else: the role for metrics-api; "
        "its password [env METRICS_READER_PASSWORD, default none]",
    )
    schema.set_defaults(handler=apply)


def apply(args: argparse.Namespace) -> int:
    from worker.backfill import backfill, pending
    from worker.schema import apply_schema, grant_reader

    settings = settings_from(args, Connections)
    with connect(settings.database_url, settings.connect_timeout) as conn:
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
