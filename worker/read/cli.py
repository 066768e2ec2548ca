"""The ``query`` subcommand: ``metrics-worker query <name> [filters] [--json]``.

Readable tables by default, JSON (the API's shapes) with ``--json``. Errors are one line on stderr
and the exit code of contract/exits.py: a mistake in the filters 2, a session not found 1, a
database away 3.
Standalone: ``python -m worker.read.cli <name> [filters] [--json]``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import psycopg
from pydantic import BaseModel
from rich.console import Console
from rich.table import Table
from rich.text import Text

from contract import exits
from contract.exits import NotFound
from worker.read import queries
from worker.read.models import (
    DailyMetrics,
    ForwardEndpointMetrics,
    ForwardMetricsSummary,
    ForwardRequestMetrics,
    MetricsSummary,
    ModelMetrics,
    SessionDetail,
    SessionMetrics,
    TokenUsage,
)
from worker.read.queries import DEFAULT_DAYS, DEFAULT_LIMIT, MAX_DAYS, MAX_LIMIT
from worker.settings import DEFAULT_DATABASE_URL

Result = BaseModel | list[Any] | None


@dataclass(frozen=True)
class _Read:
    name: str
    aliases: tuple[str, ...]
    help: str
    filters: tuple[str, ...]  # which of: dates, model, endpoint, limit, window, session_id
    run: Callable[[psycopg.Connection[Any], argparse.Namespace], Result]
    render: Callable[[Any], list[Table]]


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
    if "\x00" in text:
        raise argparse.ArgumentTypeError(f"must not contain a NUL character: {text!r}")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # bytes the shell passed that are not UTF-8 (surrogate-escaped)
        raise argparse.ArgumentTypeError(f"not valid UTF-8: {text!r}") from None
    return text


def _add_filters(parser: argparse.ArgumentParser, filters: Sequence[str]) -> None:
    if "session_id" in filters:
        parser.add_argument("session_id", type=_name, help="the session to show")
    if "dates" in filters:
        parser.add_argument("--start-date", type=_date, help="first UTC date of started_at, inclusive")
        parser.add_argument("--end-date", type=_date, help="last UTC date of started_at, inclusive")
    if "window" in filters:
        parser.add_argument(
            "--days",
            type=_bounded(1, MAX_DAYS),
            default=DEFAULT_DAYS,
            help="days in the window (default: %(default)s)",
        )
        parser.add_argument(
            "--end-date", type=_date, help="last UTC date of the window (default: today, UTC)"
        )
    if "endpoint" in filters:
        parser.add_argument("--endpoint", type=_name, help="only this upstream endpoint")
    if "model" in filters:
        parser.add_argument("--model", type=_name, help="only this model (unknown: an empty result)")
    if "limit" in filters:
        parser.add_argument(
            "--limit",
            type=_bounded(1, MAX_LIMIT),
            default=DEFAULT_LIMIT,
            help=f"rows to show, 1..{MAX_LIMIT} (default: %(default)s)",
        )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--database-url",
        dest="query_database_url",
        metavar="URL",
        help=f"PostgreSQL URL to read from (env DATABASE_URL; default {DEFAULT_DATABASE_URL})",
    )


def _add_reads(parser: argparse.ArgumentParser) -> None:
    names = parser.add_subparsers(dest="query_name", metavar="<name>", required=True)
    for read in READS:
        sub = names.add_parser(read.name, aliases=list(read.aliases), help=read.help, description=read.help)
        _add_filters(sub, read.filters)
        sub.set_defaults(handler=run_query, query_read=read.name)


def add_query_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``query <name> [filters] [--json]`` to a CLI's subparsers; run it with ``args.handler(args)``."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "query",
        help="print one of the metrics reads (summary, sessions, ...)",
        description="Print one of the metrics reads as a table, or as JSON with --json.",
    )
    _add_reads(parser)
    return parser


# -- running ------------------------------------------------------------------------------------


def run_query(args: argparse.Namespace) -> int:
    """Run the read named in ``args`` and print it; the exit status."""
    read = READS_BY_NAME[args.query_read]
    url = (
        args.query_database_url
        or getattr(args, "database_url", None)  # the main CLI's flag, when it has one
        or os.environ.get("DATABASE_URL")
        or DEFAULT_DATABASE_URL
    )
    with psycopg.connect(url, autocommit=True) as conn:
        conn.read_only = True
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        result = read.run(conn, args)
    if result is None:
        raise NotFound(f"session {args.session_id!r} not found (unknown, or its start has not arrived yet)")
    if args.json:
        payload = (
            [r.model_dump(mode="json") for r in result]
            if isinstance(result, list)
            else result.model_dump(mode="json")
        )
        print(json.dumps(payload, indent=2))
    else:
        console = Console()
        if not console.is_terminal:
            console = Console(width=200)  # piped: do not squeeze the tables into 80 columns
        for table in read.render(result):
            console.print(table)
    return 0


# -- tables -------------------------------------------------------------------------------------


def _cell(value: Any) -> Text:
    """Plain text (never rich markup: an error text may hold brackets)."""
    if value is None:
        return Text("-", style="dim")
    if isinstance(value, datetime):
        return Text(value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z")
    if isinstance(value, bool):
        return Text("yes" if value else "no")
    if isinstance(value, int):
        return Text(f"{value:,}")
    if isinstance(value, dict):
        return Text(", ".join(f"{k} {_plain(v)}" for k, v in value.items()) or "-")
    return Text(str(value))


def _plain(value: Any) -> str:
    return f"{value.total_tokens:,}" if isinstance(value, TokenUsage) else f"{value:,}"


def _table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> Table:
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(_cell(v) for v in row))
    return table


def _pairs(title: str, pairs: Sequence[tuple[str, Any]]) -> Table:
    table = _table(title, ["", "value"], pairs)
    table.show_header = False
    return table


def _tokens(usage: TokenUsage) -> list[int]:
    return [usage.prompt_tokens, usage.completion_tokens, usage.total_tokens]


_TOKEN_COLUMNS = ["prompt", "completion", "total tokens"]


def _render_summary(s: MetricsSummary) -> list[Table]:
    return [
        _pairs(
            "Summary",
            [
                ("sessions", s.total_sessions),
                ("active (running)", s.active_sessions),
                ("completed", s.completed_sessions),
                ("awaiting response", s.awaiting_response_sessions),
                ("error", s.error_sessions),
                ("cancelled", s.cancelled_sessions),
                ("prompt tokens", s.total_tokens.prompt_tokens),
                ("completion tokens", s.total_tokens.completion_tokens),
                ("total tokens", s.total_tokens.total_tokens),
                ("tool calls", s.total_tool_calls),
                ("prompt cached tool outputs", s.prompt_cached_tool_outputs),
                ("compression events", s.total_compression_events),
                ("tokens saved", s.total_tokens_saved),
                ("sync mismatches", s.total_sync_mismatches),
                ("  by reason", s.sync_mismatch_breakdown),
            ],
        )
    ]


def _render_models(rows: list[ModelMetrics]) -> list[Table]:
    columns = ["model", "sessions", "rounds", *_TOKEN_COLUMNS, "tool calls", "cached outputs"]
    return [
        _table(
            "By model",
            columns,
            [
                [
                    m.model,
                    m.sessions,
                    m.rounds,
                    *_tokens(m.tokens),
                    m.tool_calls,
                    m.prompt_cached_tool_outputs,
                ]
                for m in rows
            ],
        )
    ]


def _render_sessions(rows: list[SessionMetrics]) -> list[Table]:
    columns = [
        "session",
        "model",
        "status",
        "started",
        "duration ms",
        "rounds",
        "total tokens",
        "tool calls",
        "messages",
        "tools",
    ]
    return [
        _table(
            f"Sessions ({len(rows)})",
            columns,
            [
                [s.session_id, s.model, s.status, s.started_at, s.duration_ms, s.total_rounds,
                 s.total_token_usage.total_tokens, s.tool_call_count, s.message_count, s.tool_breakdown]
                for s in rows
            ],
        )
    ]  # fmt: skip


def _render_detail(d: SessionDetail) -> list[Table]:
    s = d.session
    session = _pairs(
        f"Session {s.session_id}",
        [
            ("model", s.model),
            ("status", s.status),
            ("started", s.started_at),
            ("completed", s.completed_at),
            ("duration ms", s.duration_ms),
            ("rounds", s.total_rounds),
            ("messages", s.message_count),
            (
                "prompt / completion / total tokens",
                " / ".join(f"{n:,}" for n in _tokens(s.total_token_usage)),
            ),
            ("tool calls", s.tool_call_count),
            ("  by tool", s.tool_breakdown),
            ("prompt cached tool outputs", s.prompt_cached_tool_outputs),
            (
                "compression events / tokens saved",
                f"{s.total_compression_events:,} / {s.total_tokens_saved:,}",
            ),
        ],
    )
    rounds = _table(
        "Rounds",
        ["round", "model", "status", "started", "duration ms", *_TOKEN_COLUMNS, "cached", "compressions",
         "saved", "error"],
        [
            [r.round_id, r.model, r.status, r.started_at, r.duration_ms, *_tokens(r.token_usage),
             r.prompt_cached_tool_outputs, r.compression_count, r.tokens_saved, r.error]
            for r in d.rounds
        ],
    )  # fmt: skip
    calls = _table(
        "Tool calls",
        ["round", "tool call", "tool", "started", "duration ms", "success", "error"],
        [
            [r.round_id, t.tool_call_id, t.tool_name, t.started_at, t.duration_ms, t.success, t.error]
            for r in d.rounds
            for t in r.tool_calls
        ],
    )
    return [session, rounds, calls]


def _render_daily(rows: list[DailyMetrics]) -> list[Table]:
    columns = [
        "date (UTC)",
        "sessions",
        "rounds",
        *_TOKEN_COLUMNS,
        "tool calls",
        "cached",
        "tokens by model",
        "calls by tool",
    ]
    return [
        _table(
            "Daily",
            columns,
            [
                [d.date, d.total_sessions, d.total_rounds, *_tokens(d.total_token_usage), d.total_tool_calls,
                 d.prompt_cached_tool_outputs, d.model_breakdown, d.tool_breakdown]
                for d in rows
            ],
        )
    ]  # fmt: skip


def _render_forward_summary(s: ForwardMetricsSummary) -> list[Table]:
    return [
        _pairs(
            "Forwarded requests",
            [
                ("requests", s.total_requests),
                ("successful", s.successful_requests),
                ("failed (error)", s.failed_requests),
                ("prompt tokens", s.total_tokens.prompt_tokens),
                ("completion tokens", s.total_tokens.completion_tokens),
                ("total tokens", s.total_tokens.total_tokens),
                ("average duration ms", s.avg_duration_ms),
            ],
        )
    ]


def _render_endpoints(rows: list[ForwardEndpointMetrics]) -> list[Table]:
    columns = ["endpoint", "requests", "successful", "failed", *_TOKEN_COLUMNS, "avg duration ms"]
    return [
        _table(
            "By endpoint",
            columns,
            [
                [e.endpoint, e.requests, e.successful, e.failed, *_tokens(e.tokens), e.avg_duration_ms]
                for e in rows
            ],
        )
    ]


def _render_requests(rows: list[ForwardRequestMetrics]) -> list[Table]:
    columns = [
        "forward",
        "endpoint",
        "model",
        "stream",
        "status",
        "code",
        "started",
        "duration ms",
        "total tokens",
        "error",
    ]
    return [
        _table(
            f"Forwarded requests ({len(rows)})",
            columns,
            [
                [f.forward_id, f.endpoint, f.model, f.is_stream, f.status, f.status_code, f.started_at,
                 f.duration_ms, None if f.token_usage is None else f.token_usage.total_tokens, f.error]
                for f in rows
            ],
        )
    ]  # fmt: skip


def _render_forward_daily(rows: list[DailyMetrics]) -> list[Table]:
    return [
        _table(
            "Forwarded requests per day",
            ["date (UTC)", "requests", *_TOKEN_COLUMNS],
            [[d.date, d.total_sessions, *_tokens(d.total_token_usage)] for d in rows],
        )
    ]


def _dates(args: argparse.Namespace) -> dict[str, Any]:
    return {"start_date": args.start_date, "end_date": args.end_date}


READS: tuple[_Read, ...] = (
    _Read("summary", (), "totals over sessions, and sync mismatches", ("dates",),
          lambda c, a: queries.summary(c, **_dates(a)), _render_summary),
    _Read("by_model", ("by-model", "models"), "per model, most tokens first", ("dates",),
          lambda c, a: queries.by_model(c, **_dates(a)), _render_models),
    _Read("sessions", (), "latest sessions first", ("dates", "model", "limit"),
          lambda c, a: queries.sessions(c, **_dates(a), model=a.model, limit=a.limit), _render_sessions),
    _Read("session_detail", ("session-detail", "session"), "one session with its rounds and tool calls",
          ("session_id",), lambda c, a: queries.session_detail(c, a.session_id), _render_detail),
    _Read("daily_metrics", ("daily-metrics", "daily"), "per UTC day, with model and tool breakdowns",
          ("window",), lambda c, a: queries.daily_metrics(c, days=a.days, end_date=a.end_date),
          _render_daily),
    _Read("forward_summary", ("forward-summary",), "totals over forwarded requests",
          ("dates", "endpoint", "model"),
          lambda c, a: queries.forward_summary(c, **_dates(a), endpoint=a.endpoint, model=a.model),
          _render_forward_summary),
    _Read("forward_by_endpoint", ("forward-by-endpoint", "forward-endpoints"), "per endpoint, busiest first",
          ("dates", "model"), lambda c, a: queries.forward_by_endpoint(c, **_dates(a), model=a.model),
          _render_endpoints),
    _Read("forward_requests", ("forward-requests",), "latest forwarded requests first",
          ("dates", "endpoint", "model", "limit"),
          lambda c, a: queries.forward_requests(c, **_dates(a), endpoint=a.endpoint, model=a.model,
                                                limit=a.limit),
          _render_requests),
    _Read("forward_daily_metrics", ("forward-daily-metrics", "forward-daily"),
          "forwarded requests per UTC day",
          ("window",), lambda c, a: queries.forward_daily_metrics(c, days=a.days, end_date=a.end_date),
          _render_forward_daily),
)  # fmt: skip
READS_BY_NAME = {read.name: read for read in READS}


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m worker.read.cli <name> ...``: the ``query`` subcommand on its own."""
    parser = argparse.ArgumentParser(
        prog="python -m worker.read.cli",
        description="Print one of the metrics reads as a table, or as JSON with --json.",
    )
    _add_reads(parser)
    args = parser.parse_args(argv)
    return exits.run(parser.prog, lambda: run_query(args))


if __name__ == "__main__":
    sys.exit(main())
