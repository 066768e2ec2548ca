"""``metrics-api``: the console script that serves the read API (worker/read/api.py) with uvicorn.

Parses its flags, checks that it can listen and that the tokens make sense (each a one-line
error and exit 2), then serves until SIGTERM or Ctrl-C.
"""

from __future__ import annotations

import argparse
import logging
import socket
import sys

import uvicorn

from contract import exits
from contract.connect import redis_failure
from contract.durations import duration_arg
from worker.errors import postgres_failure
from worker.read.api import create_app
from worker.read.auth import TOKENS_FILE_VARIABLE, TOKENS_VARIABLE, startup_tokens
from worker.settings import DEFAULT_DATABASE_URL

log = logging.getLogger(__name__)


def _port(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port: use 1 to 65535")
    return int(text)


def _check_can_listen(host: str, port: int) -> None:
    """A busy port or an unknown host is one line (uvicorn would print two tracebacks)."""
    try:
        family, kind, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        with socket.socket(family, kind) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
            probe.bind(address)
    except OSError as exc:
        raise ValueError(
            f"--host/--port: cannot listen on {host}:{port}: {exc.strerror or exc}; choose another"
        ) from None


def build_parser() -> exits.Parser:
    parser = exits.Parser(
        prog="metrics-api",
        description="Serve the agent metrics reads as an HTTP JSON API (OpenAPI at /docs).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default %(default)s)")
    parser.add_argument("--port", type=_port, default=8000, help="port to listen on (default %(default)s)")
    parser.add_argument(
        "--database-url",
        metavar="URL",
        help=f"PostgreSQL to read from [env DATABASE_URL, default {DEFAULT_DATABASE_URL}]",
    )
    parser.add_argument(
        "--connect-timeout",
        type=duration_arg("--connect-timeout"),
        metavar="DURATION",
        help="how long a connect to PostgreSQL may take before a request is answered 503, e.g. 5s "
        "[env METRICS_CONNECT_TIMEOUT, default 5s]",
    )
    parser.add_argument(
        "--max-connections",
        type=int,
        default=4,
        help="database connections in the pool (default %(default)s)",
    )
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"], help="(default info)"
    )
    parser.add_argument(
        "--no-auth",
        action="store_true",
        help=f"allow a non-loopback --host with no API tokens set ({TOKENS_VARIABLE}, "
        f"{TOKENS_FILE_VARIABLE}); tokens that are set are still required",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )

    def serve() -> int:
        tokens = startup_tokens(args.host, no_auth=args.no_auth)  # a TokenError is a usage error
        _check_can_listen(args.host, args.port)
        log.info("API tokens: %s", f"{len(tokens)} configured" if tokens else "none, the reads are open")
        app = create_app(
            args.database_url,
            max_connections=args.max_connections,
            connect_timeout=args.connect_timeout,
            tokens=tokens,
        )
        uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
        return 0

    return exits.run("metrics-api", serve, postgres_failure, redis_failure)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
