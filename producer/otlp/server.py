"""``metrics-otlp``: the console script that serves OTLP/HTTP traces (producer/otlp/app.py) with
uvicorn, on port 4318 by default.

Parses its flags (each mirrors a variable, and says so in ``--help``), checks the tokens and that
it can listen (each a one-line error and exit 2), then serves until SIGTERM or Ctrl-C.
"""

from __future__ import annotations

import argparse
import gc
import logging
import socket
import sys

import uvicorn

from contract import exits
from contract.connect import redis_failure
from contract.durations import seconds_arg
from contract.tokens import TokenError, is_loopback, read_tokens
from producer.otlp.settings import (
    DEFAULT_PORT,
    INGEST_TOKENS_FILE_VARIABLE,
    INGEST_TOKENS_VARIABLE,
    OtlpSettings,
)
from producer.settings import DEFAULT_REDIS_URL

log = logging.getLogger(__name__)

#: metrics-api's read tokens: an ingest token must not be one of them (a writer must not read).
READ_TOKENS_VARIABLES = ("METRICS_API_TOKENS", "METRICS_API_TOKENS_FILE")


def _port(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port: use 1 to 65535")
    return int(text)


def build_parser() -> exits.Parser:
    parser = exits.Parser(
        prog="metrics-otlp",
        description="Receive OpenTelemetry traces over OTLP/HTTP (POST /v1/traces, protobuf or JSON, "
        "gzip or not) and publish their GenAI spans as the pipeline's events onto its Redis streams.",
        epilog="Answers: 200 once Redis has the events (partial success names the spans it could not "
        "map); 400 undecodable; 401 no or wrong ingest token; 413 body over --max-body; 415 content "
        "type or encoding; 503 with Retry-After while Redis is away, the backlog is over --max-backlog "
        "or the receiver is at its in-flight cap. GET /healthz and GET /metrics (Prometheus) need no token.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default %(default)s)")
    parser.add_argument(
        "--port",
        type=_port,
        default=DEFAULT_PORT,
        help="port to listen on (default %(default)s, OTLP/HTTP's)",
    )
    redis_group = parser.add_argument_group("Redis (flags override the environment)")
    redis_group.add_argument(
        "--redis-url", metavar="URL", help=f"[env REDIS_URL, default {DEFAULT_REDIS_URL}]"
    )
    redis_group.add_argument(
        "--stream", metavar="NAME", help="stream name [env METRICS_STREAM, default metrics:events]"
    )
    redis_group.add_argument(
        "--shards", type=int, metavar="K", help="number of stream shards [env METRICS_SHARDS, default 1]"
    )
    redis_group.add_argument(
        "--group",
        metavar="NAME",
        help="the workers' consumer group, whose lag is the backlog "
        "[env METRICS_GROUP, default metrics-workers]",
    )
    limits = parser.add_argument_group("limits (flags override the environment)")
    limits.add_argument(
        "--max-body",
        type=int,
        metavar="BYTES",
        help="a request body's bytes after decompression; over it: 413 "
        "[env METRICS_OTLP_MAX_BODY, default 67108864 (64 MiB)]",
    )
    limits.add_argument(
        "--max-backlog",
        type=int,
        metavar="EVENTS",
        help="events waiting for the workers (all shards) over which requests are answered 503 "
        "[env METRICS_OTLP_MAX_BACKLOG, default 1000000; 0: no bound]",
    )
    limits.add_argument(
        "--max-inflight",
        type=int,
        metavar="REQUESTS",
        help="requests handled at once; one more is answered 503 [env METRICS_OTLP_MAX_INFLIGHT, default 64]",
    )
    limits.add_argument(
        "--max-inflight-bytes",
        type=int,
        metavar="BYTES",
        help="body bytes held by the requests in progress; over it: 503 "
        "[env METRICS_OTLP_MAX_INFLIGHT_BYTES, default 268435456 (256 MiB)]",
    )
    limits.add_argument(
        "--publish-timeout",
        type=seconds_arg("--publish-timeout"),
        metavar="DURATION",
        help="how long a send Redis did not confirm is retried before the answer is 503, e.g. 5s "
        "[env METRICS_OTLP_PUBLISH_TIMEOUT, default 5s]",
    )
    parser.add_argument(
        "--no-auth",
        action="store_true",
        help=f"allow a non-loopback --host with no ingest tokens set ({INGEST_TOKENS_VARIABLE}, "
        f"{INGEST_TOKENS_FILE_VARIABLE}); tokens that are set are still required",
    )
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"], help="(default info)"
    )
    return parser


def settings_from(args: argparse.Namespace) -> OtlpSettings:
    return OtlpSettings.from_env(
        host=args.host,
        port=args.port,
        redis_url=args.redis_url,
        stream=args.stream,
        shards=args.shards,
        group=args.group,
        max_body=args.max_body,
        max_backlog=args.max_backlog,
        max_inflight=args.max_inflight,
        max_inflight_bytes=args.max_inflight_bytes,
        publish_timeout=args.publish_timeout,
    )


def startup_tokens(host: str, *, no_auth: bool) -> tuple[str, ...]:
    """The ingest tokens to serve with on ``host``. Raises TokenError for an open receiver on a
    non-loopback address without ``no_auth``, an unusable token setting, or an ingest token that
    is also a read token."""
    tokens = read_tokens(INGEST_TOKENS_VARIABLE, INGEST_TOKENS_FILE_VARIABLE)
    if not tokens and not no_auth and not is_loopback(host):
        raise TokenError(
            f"refusing to receive on {host}, a non-loopback address, without ingest tokens: set "
            f"{INGEST_TOKENS_VARIABLE} (or {INGEST_TOKENS_FILE_VARIABLE}), "
            "or pass --no-auth to receive from anyone"
        )
    if set(tokens) & set(read_tokens(*READ_TOKENS_VARIABLES)):
        raise TokenError(
            f"an ingest token ({INGEST_TOKENS_VARIABLE}) is also a read token (METRICS_API_TOKENS): "
            "give writers tokens of their own, so that an agent that may write cannot read every agent's data"
        )
    return tokens


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


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )

    def serve() -> int:
        from producer.otlp.app import OtlpApp

        settings = settings_from(args)
        tokens = startup_tokens(settings.host, no_auth=args.no_auth)
        _check_can_listen(settings.host, settings.port)
        log.info(
            "metrics-otlp: ingest tokens: %s; stream %s, %d shard(s); body limit %d bytes",
            f"{len(tokens)} configured" if tokens else "none, anyone on this host may send",
            settings.producer.stream,
            settings.producer.shards,
            settings.max_body,
        )
        app = OtlpApp(settings, tokens)
        # What is loaded by now (modules, pydantic's and protobuf's schemas: 100,000 objects) lives
        # as long as the process: out of the collector's way, a full collection walks only what
        # requests made, and stops costing a request 50 ms now and then (p99, bench/otlp.py).
        gc.freeze()
        uvicorn.run(
            app,
            host=settings.host,
            port=settings.port,
            log_level=args.log_level,
            access_log=False,  # a line per export costs more than the export's mapping
            lifespan="on",
            timeout_graceful_shutdown=10,  # then the publisher sends what it was handed, and stops
        )
        return 0

    return exits.run("metrics-otlp", serve, redis_failure)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
