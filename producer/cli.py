"""``metrics-producer``: replay JSON-lines events into Redis, or simulate agents.

metrics-producer publish events.jsonl        # or - for stdin
metrics-producer simulate --agents 4 --sessions 50 --rate 2000 --duration 10
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import time
from collections.abc import Iterable, Sequence
from datetime import timedelta
from typing import IO

from contract import exits
from contract.codec import ContractError, decode
from contract.connect import redis_failure
from contract.durations import duration_arg, seconds_arg
from contract.exits import ExitCode
from producer.publisher import Publisher
from producer.settings import ENV_VARS, ProducerSettings

log = logging.getLogger("producer.cli")

# Rejected lines: the command ran and did not publish them all; not delivered: Redis was away.
EXIT_OK, EXIT_BAD_LINES, EXIT_USAGE, EXIT_NOT_DELIVERED = (
    ExitCode.OK,
    ExitCode.FAILED,
    ExitCode.USAGE,
    ExitCode.UNAVAILABLE,
)


def _common() -> exits.Parser:
    common = exits.Parser(add_help=False)
    group = common.add_argument_group("connection and spool (flags override the environment)")
    env = os.environ.get
    group.add_argument(
        "--redis-url",
        default=env("REDIS_URL"),
        help="Redis URL [env REDIS_URL, default redis://127.0.0.1:6379/0]",
    )
    group.add_argument(
        "--stream",
        default=env("METRICS_STREAM"),
        help="stream name, the prefix of every key [env METRICS_STREAM, default metrics:events]",
    )
    group.add_argument(
        "--shards", type=int, default=None, help="number of stream shards [env METRICS_SHARDS, default 1]"
    )
    group.add_argument(
        "--spool-dir",
        default=env("METRICS_SPOOL_DIR"),
        help="where events wait while Redis is away [env METRICS_SPOOL_DIR, "
        "default $XDG_STATE_HOME/metrics-producer/spool]",
    )
    group.add_argument(
        "--spool-max-bytes",
        type=int,
        default=None,
        help="spool bound; beyond it the oldest events are dropped "
        "[env METRICS_SPOOL_MAX_BYTES, default 134217728]",
    )
    group.add_argument(
        "--timeout",
        type=seconds_arg("--timeout"),
        default=30.0,
        metavar="DURATION",
        help="how long to wait at the end for delivery, e.g. 30s or 2m; a bare number is seconds "
        "(default 30s)",
    )
    common.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG")
    return common


def build_parser() -> argparse.ArgumentParser:
    common = _common()
    env_list = ", ".join(sorted(ENV_VARS.values()))
    parser = exits.Parser(
        prog="metrics-producer",
        description="Publish agent telemetry events to Redis streams, spooling to disk while Redis is away.",
        epilog=f"Environment variables read: {env_list}. A flag wins over its variable.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    publish = commands.add_parser(
        "publish",
        parents=[common],
        help="replay JSON-lines events from a file or stdin",
        description="Validate each line against the contract and publish the valid ones. Exit status: "
        "0 all published and in Redis; 1 some lines were invalid (named on stderr, the "
        "valid ones are published); 2 usage error; 3 all valid but some are still only "
        "on the spool (Redis unreachable; the next publisher replays them).",
    )
    publish.add_argument("file", help="JSON-lines file, or - for stdin")
    publish.set_defaults(handler=_publish)
    simulate = commands.add_parser(
        "simulate",
        parents=[common],
        help="run simulated agents with realistic session lifecycles",
        description="N agents (threads sharing one publisher, or processes with --processes), each "
        "running M sessions with rounds, tool calls, compressions, forwards and the "
        "occasional sync mismatch, at R events/s in total, with a progress bar on stderr.",
    )
    simulate.add_argument("--agents", type=int, default=1, help="simulated agents (default 1)")
    simulate.add_argument("--sessions", type=int, default=10, help="sessions per agent (default 10)")
    simulate.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="at most this many events per second, all agents together; 0: no limit (default 0)",
    )
    simulate.add_argument(
        "--duration",
        type=seconds_arg("--duration"),
        default=None,
        metavar="DURATION",
        help="stop starting sessions after this long, e.g. 90s or 5m (a bare number is seconds); those "
        "in flight end at once (default: when every agent has run its sessions)",
    )
    timing = simulate.add_mutually_exclusive_group()
    timing.add_argument(
        "--backfill",
        type=duration_arg("--backfill"),
        default=timedelta(hours=1),
        help="the simulated histories begin this long ago (e.g. 30m, 2h) and are sent as fast as "
        "--rate allows until they reach the present, then in real time; 0s: in real time from "
        "now (default 1h)",
    )
    timing.add_argument(
        "--sent-times",
        action="store_true",
        help="stamp each event when it is sent, not with its simulated time (rounds and tool calls "
        "then last only the time between calls; what a latency benchmark measures)",
    )
    simulate.add_argument(
        "--seed", type=int, default=None, help="random seed, for a repeatable run (default: a random one)"
    )
    simulate.add_argument("--processes", action="store_true", help="one process per agent instead of threads")
    simulate.add_argument("--no-progress", action="store_true", help="no progress bar")
    simulate.set_defaults(handler=_simulate)
    return parser


def settings_from(args: argparse.Namespace) -> ProducerSettings:
    return ProducerSettings.from_env(
        redis_url=args.redis_url,
        stream=args.stream,
        shards=args.shards,
        spool_dir=args.spool_dir,
        spool_max_bytes=args.spool_max_bytes,
    )


def publish_lines(
    publisher: Publisher, lines: Iterable[str], source: str, errors: IO[str]
) -> tuple[int, int]:
    """Validate and publish each non-blank line; report each bad one as ``source:line: field: reason``.
    Returns (published, rejected)."""
    published = rejected = 0
    high_water = publisher.settings.queue_size // 2
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            event = decode(line)
        except ContractError as exc:
            rejected += 1
            print(f"{source}:{number}: {exc}", file=errors)
            continue
        publisher.publish(event)
        published += 1
        while publisher.queued > high_water:  # a file is not an agent: wait instead of dropping
            time.sleep(0.001)
    return published, rejected


def _publish(args: argparse.Namespace, settings: ProducerSettings) -> int:
    source = "<stdin>" if args.file == "-" else args.file
    with contextlib.ExitStack() as stack:
        try:
            handle = sys.stdin if args.file == "-" else stack.enter_context(open(args.file, encoding="utf-8"))
        except OSError as exc:
            print(f"metrics-producer: cannot read {source}: {exc.strerror}", file=sys.stderr)
            return EXIT_USAGE
        publisher = Publisher(settings)
        try:
            published, rejected = publish_lines(publisher, handle, source, sys.stderr)
        except UnicodeDecodeError as exc:
            print(f"metrics-producer: {source} is not UTF-8 text: {exc}", file=sys.stderr)
            publisher.close(args.timeout)
            return EXIT_USAGE
    delivered = publisher.close(args.timeout)
    stats = publisher.stats()
    # Replayed counts what earlier publishers left in the spool too: kept apart from this run's.
    print(
        f"published {published} events, rejected {rejected} lines; Redis got {stats['sent']} directly "
        f"and {stats['replayed']} replayed from the spool (earlier runs' included); "
        f"{'nothing' if delivered else 'some'} left in the spool",
        file=sys.stderr,
    )
    if rejected:
        return EXIT_BAD_LINES
    if not delivered:
        return _undelivered(settings)
    return EXIT_OK


def _simulate(args: argparse.Namespace, settings: ProducerSettings) -> int:
    from tqdm import tqdm  # type: ignore[import-untyped]

    from producer import simulate

    if args.agents < 1 or args.sessions < 1 or args.rate < 0:
        print(
            "metrics-producer: --agents and --sessions must be at least 1, --rate at least 0", file=sys.stderr
        )
        return EXIT_USAGE
    bar = tqdm(unit=" events", file=sys.stderr, disable=args.no_progress, dynamic_ncols=True)
    started = time.monotonic()
    try:
        totals = simulate.run(
            settings,
            args.agents,
            args.sessions,
            rate=args.rate,
            duration=args.duration,
            seed=args.seed,
            processes=args.processes,
            progress=bar.update,
            backfill=None if args.sent_times else args.backfill.total_seconds(),
        )
    finally:
        bar.close()
    elapsed = time.monotonic() - started
    stats = totals.stats
    dropped = sum(v for k, v in stats.items() if k.startswith("dropped_"))
    print(
        f"simulated {args.agents} agent{'' if args.agents == 1 else 's'}: {totals.events} events, "
        f"{totals.sessions} sessions in "
        f"{elapsed:.1f} s ({totals.events / max(elapsed, 1e-9):,.0f} events/s); Redis got "
        f"{stats.get('sent', 0)} directly and {stats.get('replayed', 0)} replayed from the spool "
        f"(earlier runs' included); {'nothing' if totals.delivered else 'some'} left in the spool, "
        f"dropped {dropped}"
    )
    if not totals.delivered:
        return _undelivered(settings)
    return EXIT_OK


def _undelivered(settings: ProducerSettings) -> int:
    print(
        f"metrics-producer: Redis unreachable (check --redis-url / REDIS_URL); the events wait in "
        f"{settings.spool_dir} for the next publisher",
        file=sys.stderr,
    )
    return EXIT_NOT_DELIVERED


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # The sender's few INFO lines: which mode it connected in (one Redis or a cluster), replays.
    logging.getLogger("producer.sender").setLevel(logging.DEBUG if args.verbose else logging.INFO)
    try:
        settings = settings_from(args)
    except ValueError as exc:
        parser.error(str(exc))
    return exits.run("metrics-producer", lambda: int(args.handler(args, settings)), redis_failure)


if __name__ == "__main__":
    sys.exit(main())
