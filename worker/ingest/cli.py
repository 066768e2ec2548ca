"""The ingest room's sub-commands of ``metrics-worker``: ``run`` a worker, show its ``status``.

Each ``configure_*`` adds its sub-command to the top parser (worker/cli.py) with its handler in
``args.handler``; dead letters have their own module (worker/ingest/dlq.py).
"""

from __future__ import annotations

import argparse
import logging
from datetime import timedelta
from typing import Any

from contract.connect import Client, connect, describe
from contract.durations import duration_arg, ms_arg
from worker.flags import REDIS, add_connections, settings_from
from worker.settings import Connections, WorkerSettings
from worker.status import read_status, unrouted_warning

log = logging.getLogger("worker")


def data_redis(settings: Connections, command: str) -> Client:
    """The data Redis (one server or a cluster) for a one-shot command: its mode at DEBUG, so the
    command's answer is all it prints."""
    timeout = settings.connect_timeout.total_seconds()
    client = connect(settings.redis_url, socket_timeout=30, socket_connect_timeout=timeout)
    log.debug("%s: %s", command, describe(client))
    return client


def configure_run(sub: Any) -> None:
    run: argparse.ArgumentParser = sub.add_parser(
        "run",
        help="consume the stream and apply events (one worker; start N for N workers)",
        description="Consume the stream as one worker of the consumer group and apply its events to "
        "PostgreSQL, until SIGTERM or Ctrl-C (which finish the batch in hand). Start N of them for N "
        "workers. Applies schema.sql first if it is missing. Durations take units (2s, 500ms); a bare "
        "number in a *-ms flag or variable is milliseconds.",
    )
    add_connections(run)
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
        "--prices-file",
        metavar="PATH",
        help="own prices (TOML [[price]] tables) over genai-prices' bundled list, read once at start; "
        "a bad file is refused with one line [env METRICS_PRICES_FILE, default none]",
    )
    run.add_argument(
        "--batch-size", type=int, metavar="N", help="entries per batch [env METRICS_BATCH_SIZE, default 1000]"
    )
    run.add_argument(
        "--block-ms",
        type=ms_arg("--block-ms"),
        metavar="DURATION",
        help="how long a read waits for entries, e.g. 2s or 500ms [env METRICS_BLOCK_MS, default 2s]",
    )
    run.add_argument(
        "--claim-idle-ms",
        type=ms_arg("--claim-idle-ms"),
        metavar="DURATION",
        help="claim entries pending this long on another consumer, e.g. 30s "
        "[env METRICS_CLAIM_IDLE_MS, default 30s]",
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
    run.set_defaults(handler=run_worker)


def run_worker(args: argparse.Namespace) -> int:
    from worker.ingest.consumer import Worker, tune_gc_for_batches

    settings = settings_from(args, WorkerSettings)
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


def configure_status(sub: Any) -> None:
    status: argparse.ArgumentParser = sub.add_parser(
        "status",
        help="the group's backlog per stream, its lag, its consumers, the dead letters",
        description="Per shard: undelivered, pending, acknowledged, the oldest waiting entry's age "
        "(lag); each consumer's pending entries and idle time; the dead letters. Is the pipeline "
        "keeping up? (--json: the document the API serves at /v1/pipeline)",
    )
    status.add_argument("--json", action="store_true", help="print JSON instead of text")
    add_connections(status, REDIS)
    status.set_defaults(handler=show_status)


def show_status(args: argparse.Namespace) -> int:
    settings = settings_from(args, Connections)
    status = read_status(data_redis(settings, "status"), settings.keys, settings.group)
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
    if status.unrouted != 0:
        print(f"WARNING: {unrouted_warning(status.unrouted, settings.keys)}")
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
