"""The read room's sub-command of ``metrics-worker``: ``query <name> [filters] [--json | --csv]``.

Tables fitted to the terminal by default (worker/tables.py), JSON (the API's shapes) with
``--json``, CSV with ``--csv``. Errors are one line on stderr and the exit code of
contract/exits.py: a mistake in the filters 2, a session not found 1, a database away 3.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import psycopg
from pydantic import BaseModel
from rich.console import Console

from contract.exits import NotFound
from contract.fields import unstorable
from worker import tables
from worker.database import connect
from worker.flags import DATABASE, add_connections, settings_from
from worker.read import grids, latency_grids, queries
from worker.read.queries import DEFAULT_DAYS, DEFAULT_HOURS, DEFAULT_LIMIT, MAX_DAYS, MAX_HOURS, MAX_LIMIT
from worker.schema import require_schema
from worker.settings import Connections

Result = BaseModel | list[Any] | None


@dataclass(frozen=True)
class _Read:
    name: str
    aliases: tuple[str, ...]
    help: str
    filters: tuple[str, ...]  # dates, hours, series, model, endpoint, limit, window, session_id, user, top
    run: Callable[[psycopg.Connection[Any], argparse.Namespace], Result]
    grids: Callable[[Any], list[tables.Grid]]


# -- arguments ----------------------------------------------------------------------------------


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def _bounded(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be between {low} and {high}, got {value}")
        return value

    return parse


def _name(text: str) -> str:
    if not text:
        raise argparse.ArgumentTypeError("must not be empty")
    reason = unstorable(text)  # bytes the shell passed that are not UTF-8 come surrogate-escaped
    if reason is not None:
        raise argparse.ArgumentTypeError(f"{text!r} {reason}")
    return text


def _add_filters(parser: argparse.ArgumentParser, filters: Sequence[str]) -> None:
    if "session_id" in filters:
        parser.add_argument(
            "session_id",
            type=_name,
            help="the session's id, or its last characters as the tables show them (…3f9c2d1e)",
        )
    if "dates" in filters:
        parser.add_argument(
            "--start-date", type=_date, metavar="YYYY-MM-DD", help="first UTC date of started_at, inclusive"
        )
        parser.add_argument(
            "--end-date", type=_date, metavar="YYYY-MM-DD", help="last UTC date of started_at, inclusive"
        )
    if "window" in filters:
        parser.add_argument(
            "--days",
            type=_bounded(1, MAX_DAYS),
            default=DEFAULT_DAYS,
            help="days in the window (default %(default)s)",
        )
        parser.add_argument("--end-date", type=_date, help="last UTC date of the window (default today, UTC)")
    if "hours" in filters:
        parser.add_argument(
            "--hours",
            type=_bounded(1, MAX_HOURS),
            help=f"instead of dates: the last N UTC hours, 1..{MAX_HOURS} (the current one so far last)",
        )
    if "series" in filters:
        parser.add_argument(
            "--hours",
            type=_bounded(1, MAX_HOURS),
            default=DEFAULT_HOURS,
            help=f"UTC hours in the series, 1..{MAX_HOURS}, the current one last (default %(default)s)",
        )
    if "endpoint" in filters:
        parser.add_argument("--endpoint", type=_name, help="only this upstream endpoint")
    if "model" in filters:
        parser.add_argument("--model", type=_name, help="only this model (unknown: an empty result)")
    if "user" in filters:
        parser.add_argument("--user", dest="user_id", type=_name, help="only this user's sessions")
    if "top" in filters:
        parser.add_argument(
            "--top",
            type=_bounded(1, MAX_LIMIT),
            default=queries.DEFAULT_TOP,
            help=f"users and sessions to list, 1..{MAX_LIMIT} (default %(default)s)",
        )
    if "limit" in filters:
        parser.add_argument(
            "--limit",
            type=_bounded(1, MAX_LIMIT),
            default=DEFAULT_LIMIT,
            help=f"rows to show, 1..{MAX_LIMIT} (default %(default)s)",
        )
    if "page" in filters:
        page = parser.add_mutually_exclusive_group()
        for flag, which in (("--before", "older"), ("--after", "newer")):
            page.add_argument(
                flag,
                type=_name,
                metavar="SESSION_ID",
                help=f"the page {which} than this session (its whole id, as --json or --csv print it)",
            )
    output = parser.add_mutually_exclusive_group()
    output.add_argument(
        "--json", action="store_true", help="print JSON (the API's shapes) instead of a table"
    )
    output.add_argument(
        "--csv",
        action="store_true",
        help="print CSV instead of a table: a header row, then one row per line"
        + (
            " (the session, its rounds, its tool calls: three tables, an empty line apart)"
            if "session_id" in filters
            else ""
        ),
    )
    add_connections(parser, DATABASE)


def _add_reads(parser: argparse.ArgumentParser) -> None:
    names = parser.add_subparsers(dest="query_name", metavar="<name>", required=True)
    for read in READS:
        sub = names.add_parser(read.name, aliases=list(read.aliases), help=read.help, description=read.help)
        _add_filters(sub, read.filters)
        sub.set_defaults(handler=run_query, query_read=read.name)


def configure_parser(subparsers: Any) -> None:
    """Add ``query <name> [filters] [--json | --csv]`` to the top parser (worker/cli.py); its
    handler is in ``args.handler``."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "query",
        help="print one of the metrics reads (summary, sessions, ...)",
        description="Print one of the metrics reads as a table, or as JSON (--json) or CSV (--csv).",
    )
    _add_reads(parser)


# -- running ------------------------------------------------------------------------------------


def run_query(args: argparse.Namespace) -> int:
    """Run the read named in ``args`` and print it; the exit status."""
    read = READS_BY_NAME[args.query_read]
    if "hours" in read.filters and args.hours is not None:
        for flag, value in (("--start-date", args.start_date), ("--end-date", args.end_date)):
            if value is not None:
                raise ValueError(
                    f"--hours {args.hours} and {flag} {value.isoformat()}: give the last N hours or a date "
                    "range, not both"
                )
    settings = settings_from(args, Connections)
    with connect(settings.database_url, settings.connect_timeout) as conn:
        conn.read_only = True
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        try:
            result = read.run(conn, args)
        except psycopg.errors.UndefinedTable:
            require_schema(conn)  # says which tables, where, and what creates them
            raise
        if result is None:  # only a session is ever missing
            result = _by_short_id(conn, args)
    if args.json:
        payload = (
            [r.model_dump(mode="json") for r in result]
            if isinstance(result, list)
            else result.model_dump(mode="json")
        )
        print(json.dumps(payload, indent=2))
    elif args.csv:
        tables.write_csv(read.grids(result), sys.stdout)
    else:
        console = Console()
        tables.print_tables(read.grids(result), console, tables.terminal_width(console))
    return 0


def _by_short_id(conn: psycopg.Connection[Any], args: argparse.Namespace) -> BaseModel:
    """A session not found by its whole id: by the tail a table showed (``…3f9c2d1e``), if that
    names one session; else NotFound, saying why."""
    given: str = args.session_id
    tail = given.removeprefix(tables.ELLIPSIS).removeprefix("...")
    found = queries.sessions_ending_with(conn, tail) if len(tail) >= 4 else []
    detail = queries.session_detail(conn, found[0]) if len(found) == 1 else None
    if detail is not None:
        return detail
    if len(found) > 1:
        more = ", and more" if len(found) == 5 else ""
        raise NotFound(
            f"{given!r} is the end of several sessions' ids ({', '.join(found)}{more}): give more of it"
        )
    raise NotFound(f"session {given!r} not found (unknown, or its start has not arrived yet)")


def _dates(args: argparse.Namespace) -> dict[str, Any]:
    return {"start_date": args.start_date, "end_date": args.end_date}


def _span(args: argparse.Namespace) -> dict[str, Any]:
    """The dates, or the last --hours (a read with both filters)."""
    return {**_dates(args), "hours": args.hours}


READS: tuple[_Read, ...] = (
    _Read("summary", (), "totals over sessions, and sync mismatches", ("dates", "hours"),
          lambda c, a: queries.summary(c, **_span(a)), grids.summary),
    _Read("by-model", ("by_model", "models"), "per model, most tokens first", ("dates", "hours"),
          lambda c, a: queries.by_model(c, **_span(a)), grids.by_model),
    _Read("tools", ("tool_metrics", "tool-metrics"), "per tool: calls, succeeded, failed, unfinished",
          ("dates", "hours"), lambda c, a: queries.tool_metrics(c, **_span(a)), grids.tools),
    _Read("sessions", (), "latest sessions first", ("dates", "model", "limit", "page"),
          lambda c, a: queries.sessions(c, **_dates(a), model=a.model, limit=a.limit, before=a.before,
                                        after=a.after), grids.sessions),
    _Read("session", ("session_detail", "session-detail"), "one session: its rounds, tool calls and forwards",
          ("session_id",), lambda c, a: queries.session_detail(c, a.session_id), grids.session_detail),
    _Read("daily", ("daily_metrics", "daily-metrics"), "per UTC day, with model and tool breakdowns",
          ("window",), lambda c, a: queries.daily_metrics(c, days=a.days, end_date=a.end_date), grids.daily),
    _Read("forward-summary", ("forward_summary",), "totals over forwarded requests, by outcome",
          ("dates", "hours", "endpoint", "model"),
          lambda c, a: queries.forward_summary(c, **_span(a), endpoint=a.endpoint, model=a.model),
          grids.forward_summary),
    _Read("forward-endpoints", ("forward_by_endpoint", "forward-by-endpoint"), "per endpoint, busiest first",
          ("dates", "hours", "model"), lambda c, a: queries.forward_by_endpoint(c, **_span(a), model=a.model),
          grids.forward_endpoints),
    _Read("forward-requests", ("forward_requests",), "latest forwarded requests first",
          ("dates", "endpoint", "model", "limit"),
          lambda c, a: queries.forward_requests(c, **_dates(a), endpoint=a.endpoint, model=a.model,
                                                limit=a.limit),
          grids.forward_requests),
    _Read("forward-daily", ("forward_daily_metrics", "forward-daily-metrics"),
          "forwarded requests per UTC day, by outcome",
          ("window",), lambda c, a: queries.forward_daily_metrics(c, days=a.days, end_date=a.end_date),
          grids.forward_daily),
    _Read("cost", (), "what it cost in USD: totals, per model, per day, top users and sessions (unpriced "
          "rounds and forwards counted, never $0)", ("dates", "hours", "model", "user", "top"),
          lambda c, a: queries.cost(c, **_span(a), model=a.model, user_id=a.user_id, top=a.top), grids.cost),
    _Read("latency", (), "p50/p90/p95/p99 of round duration and time to first token per model, of tool "
          "and forward duration per tool and endpoint", ("dates", "hours"),
          lambda c, a: queries.latency(c, **_span(a)), latency_grids.latency),
    _Read("series", ("hourly",), "per UTC hour of the last N: rounds, errors, tokens, round duration",
          ("series", "model"), lambda c, a: queries.hourly_series(c, hours=a.hours, model=a.model),
          latency_grids.series),
)  # fmt: skip
READS_BY_NAME = {read.name: read for read in READS}
