"""``metrics-worker``: the command line, composed from the rooms' sub-commands.

Each room adds its own (``configure_*``) with its handler in ``args.handler``; this module only
parses and delegates. Every flag has an environment variable and the flag wins (worker/flags.py);
errors are one line and the exit code of contract/exits.py (README, "Exit codes"), never a
traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from contract import exits
from contract.connect import redis_failure
from worker import schema_cli
from worker.alerts import cli as alerts_cli
from worker.errors import postgres_failure
from worker.flags import configure_logging
from worker.ingest import cli as ingest_cli
from worker.ingest import dlq
from worker.maintenance import cli as maintenance_cli
from worker.read import cli as read_cli


def build_parser() -> exits.Parser:
    parser = exits.Parser(
        prog="metrics-worker",
        description="Apply agent telemetry events from Redis streams to PostgreSQL, look at them, "
        "and run the maintenance. Exit codes: 0 done, 1 failed, 2 a mistake in the command, "
        "3 a server away (README, Exit codes).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    ingest_cli.configure_run(sub)
    schema_cli.configure_parser(sub)
    dlq.configure_parser(sub)
    ingest_cli.configure_status(sub)
    read_cli.configure_parser(sub)
    maintenance_cli.configure_parser(sub)
    alerts_cli.configure_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args)
    return exits.run("metrics-worker", lambda: int(args.handler(args)), postgres_failure, redis_failure)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
