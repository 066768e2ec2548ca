"""The maintenance room's sub-commands of ``metrics-worker`` (reconcile, prune, fold, forget, reprice,
scheduler-url).

reconcile, prune and fold are for a shell or system cron, doing what the RQ jobs do (same lock: a run
while another holds it is skipped and says so); each run prints one JSON line with what it did.
forget deletes sessions on request and says how much went (a line, or JSON with --json).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from datetime import UTC, date, datetime, time
from typing import Any

from contract.durations import duration_arg
from contract.fields import unstorable
from worker.flags import BOTH, DATABASE, add_connections, settings_from
from worker.settings import Connections, PruneSettings, ReconcileSettings, RepriceSettings

#: reconcile and prune read hints and dead letters by the stream's keys, never as a group.
_CONNECTIONS = tuple(name for name in BOTH if name != "group")
#: forget removes rows, and hints by the stream's name (not by shard).
_FORGET_CONNECTIONS = ("database_url", "redis_url", "stream", "connect_timeout")


def configure_parser(subparsers: Any) -> None:
    """Add ``reconcile``, ``prune`` and ``scheduler-url`` to the top parser (worker/cli.py); each
    sets ``args.handler``."""
    rec = subparsers.add_parser(
        "reconcile",
        help="close sessions, rounds and forwards left open by agents that died",
        description="Reconcile stale running sessions/rounds and pending forwards (the seed's rules); "
        "rows with a live heartbeat or touched within the grace period are left alone.",
    )
    add_connections(rec, _CONNECTIONS)
    rec.add_argument(
        "--grace",
        dest="reconcile_grace",
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
    add_connections(parser, _CONNECTIONS)
    for flag, dest, text in (
        ("--older-than", "retention", "retention, e.g. 90d [env METRICS_RETENTION, default 90d]"),
        (
            "--dedupe-window",
            "dedupe_window",
            "keep counter event ids this long, at least 1d [env METRICS_DEDUPE_WINDOW, default 14d]",
        ),
        (
            "--dead-letter-retention",
            "dead_letter_retention",
            "keep dead letters this long [env METRICS_DEAD_LETTER_RETENTION, default 30d]",
        ),
    ):
        parser.add_argument(flag, dest=dest, type=duration_arg(flag), metavar="DURATION", help=text)
    parser.set_defaults(handler=prune)

    fold = subparsers.add_parser(
        "fold",
        help="fold the past days' hourly latency histograms into the daily ones",
        description="Sum the hourly latency histograms of every UTC day before today (after a 1h grace "
        "past midnight) not folded yet into one daily row per metric and name, a week per transaction; "
        "the applies then write only hourly ones for today. Then compact the closed hours of the last 8 days "
        "(5 minutes after their end) into one row per hour, metric and name, stored as the reads of hours "
        "send it. Reads stay exact before and after. Idempotent; scheduled hourly "
        "(worker/maintenance/cron.py). Prints one JSON line: days and rows folded, hours compacted.",
    )
    add_connections(fold, DATABASE)
    fold.set_defaults(handler=fold_days)

    forget = subparsers.add_parser(
        "forget",
        help="delete sessions' or users' data everywhere (rows, roll-ups, liveness hints), on request",
        description="Delete every row of the given sessions, and of every session of the given users "
        "(the session, its rounds, tool calls and "
        "forwards linked to it), what the roll-ups counted for them, and their liveness hints in "
        "Redis, then say how much went. Idempotent: a session already gone (or never stored) deletes "
        "nothing and the command still succeeds. Events still in the streams are not touched: one "
        "of a forgotten session applied afterwards stores its rows again.",
    )
    forget.add_argument(
        "--session",
        dest="session_ids",
        action="append",
        default=[],
        type=_id,
        metavar="ID",
        help="a session's whole id (as query --json prints it); repeat for more sessions",
    )
    forget.add_argument(
        "--user",
        dest="user_ids",
        action="append",
        default=[],
        type=_id,
        metavar="ID",
        help="a user id as session.started gave it: every session of that user; repeat for more users",
    )
    forget.add_argument(
        "--json", action="store_true", help="print what went as one JSON object instead of a sentence"
    )
    add_connections(forget, _FORGET_CONNECTIONS)
    forget.set_defaults(handler=forget_sessions)

    rep = subparsers.add_parser(
        "reprice",
        help="price stored rounds and forwards again after the price list or prices file changed",
        description="Recompute the stored cost of every completed round and forward (or those completed "
        "since --since, of --model) with genai-prices' bundled list and the prices file, a chunk per "
        "transaction next to running workers; sessions and roll-ups move exactly. Running it twice "
        "changes nothing. Prints one JSON line: rows examined and changed.",
    )
    add_connections(rep, DATABASE)
    rep.add_argument(
        "--prices-file",
        metavar="PATH",
        help="own prices (TOML), as the workers read them [env METRICS_PRICES_FILE, default none]",
    )
    rep.add_argument(
        "--since",
        type=date_arg,
        metavar="DATE",
        help="only rows completed on or after this UTC date (YYYY-MM-DD)",
    )
    rep.add_argument("--model", metavar="M", help="only rows of this model (as the events name it)")
    rep.set_defaults(handler=reprice)

    url = subparsers.add_parser(
        "scheduler-url",
        help="print the plain Redis URL for rq cron / rq worker [env METRICS_SCHEDULER_REDIS_URL]",
        description="RQ does not support Redis Cluster: print METRICS_SCHEDULER_REDIS_URL, else REDIS_URL "
        "when that is not a cluster, else fail in one line.",
    )
    url.set_defaults(handler=scheduler_url)


def scheduler_url(args: argparse.Namespace) -> int:
    from worker.maintenance.scheduler import scheduler_redis_url

    print(scheduler_redis_url())
    return 0


def reconcile(args: argparse.Namespace) -> int:
    from worker.maintenance.jobs import run_reconcile

    return _report("reconcile", run_reconcile(settings_from(args, ReconcileSettings), one_shot=True))


def prune(args: argparse.Namespace) -> int:
    from worker.maintenance.jobs import run_prune

    return _report("prune", run_prune(settings_from(args, PruneSettings), one_shot=True))


def fold_days(args: argparse.Namespace) -> int:
    from worker.maintenance.jobs import run_fold

    return _report("fold", run_fold(settings_from(args, Connections)))


def forget_sessions(args: argparse.Namespace) -> int:
    from worker.maintenance.jobs import run_forget

    if not args.session_ids and not args.user_ids:
        raise ValueError("forget: name what to forget with --session ID or --user ID (either, repeated)")
    done = run_forget(settings_from(args, Connections), args.session_ids, args.user_ids)
    if args.json:
        return _report("forget", asdict(done))
    print(done.describe())
    return 0


def _id(text: str) -> str:
    if not text:
        raise argparse.ArgumentTypeError("must not be empty")
    reason = unstorable(text)  # bytes the shell passed that are not UTF-8 come surrogate-escaped
    if reason is not None:
        raise argparse.ArgumentTypeError(f"{text!r} {reason}")
    return text


def reprice(args: argparse.Namespace) -> int:
    from worker.database import connect
    from worker.engine.pricing import PriceList
    from worker.maintenance.reprice import reprice as run

    settings = settings_from(args, RepriceSettings)
    prices = PriceList.load(settings.prices_file)  # a bad file: one line, before any connection
    since = datetime.combine(args.since, time(), tzinfo=UTC) if args.since else None
    with connect(settings.database_url, settings.connect_timeout) as conn:
        counts = run(conn, prices, since=since, model=args.model)
    return _report("reprice", counts)


def date_arg(text: str) -> date:
    """A --since value: a date, or argparse's one-line error naming the format."""
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (write YYYY-MM-DD)") from None


def _report(job: str, details: dict[str, Any]) -> int:
    print(json.dumps({"job": job, **details}, sort_keys=True))
    return 0
