"""Each read over a database filled through the apply engine, against the oracle's values."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg
import pytest

from tests.read.conftest import Filled, fill
from tests.read.events import Events, usage, utc
from tests.read.scenario import TIE_INSTANT
from worker.read import queries
from worker.read.models import TokenUsage
from worker.read.queries import QueryError

RANGES = [
    (None, None),
    (date(2026, 2, 3), None),
    (None, date(2026, 2, 4)),
    (date(2026, 2, 2), date(2026, 2, 6)),
    (date(2026, 2, 5), date(2026, 2, 5)),
    (date(2027, 1, 1), None),
]


@pytest.mark.parametrize(("start", "end"), RANGES)
def test_summary(scenario: Filled, scenario_conn: psycopg.Connection[Any], start: date, end: date) -> None:
    got = queries.summary(scenario_conn, start_date=start, end_date=end)
    assert got == scenario.oracle.summary(start, end)


def test_summary_counts_running_sessions_and_every_status(
    scenario: Filled, scenario_conn: psycopg.Connection[Any]
) -> None:
    got = queries.summary(scenario_conn)
    assert got.active_sessions > 0 and got.cancelled_sessions > 0 and got.awaiting_response_sessions > 0
    assert got.total_sync_mismatches == sum(got.sync_mismatch_breakdown.values()) == 30


@pytest.mark.parametrize(("start", "end"), RANGES)
def test_by_model(scenario: Filled, scenario_conn: psycopg.Connection[Any], start: date, end: date) -> None:
    assert queries.by_model(scenario_conn, start_date=start, end_date=end) == scenario.oracle.by_model(
        start, end
    )


@pytest.mark.parametrize(("start", "end"), RANGES)
@pytest.mark.parametrize("model", [None, "gpt-4", "no-such-model"])
@pytest.mark.parametrize("limit", [None, 1, 7])
def test_sessions(
    scenario: Filled,
    scenario_conn: psycopg.Connection[Any],
    start: date,
    end: date,
    model: str | None,
    limit: int | None,
) -> None:
    got = queries.sessions(scenario_conn, start_date=start, end_date=end, model=model, limit=limit)
    assert got == scenario.oracle.sessions(start, end, model, limit or 100)


def test_sessions_leave_out_sessions_whose_start_has_not_arrived(
    scenario_conn: psycopg.Connection[Any],
) -> None:
    stub = scenario_conn.execute(
        "SELECT started_at FROM session_metrics WHERE session_id = 'ghost'"
    ).fetchone()
    assert stub == (None,)  # the row exists ...
    ids = [s.session_id for s in queries.sessions(scenario_conn, limit=1000)]
    assert "ghost" not in ids and len(ids) == 60  # ... but is not a session for readers
    assert queries.session_detail(scenario_conn, "ghost") is None
    assert queries.summary(scenario_conn).total_sessions == 60


def test_sessions_break_ties_on_session_id_descending(scenario_conn: psycopg.Connection[Any]) -> None:
    tied = [s.session_id for s in queries.sessions(scenario_conn, limit=1000) if s.started_at == TIE_INSTANT]
    assert tied == ["s002", "s001", "s000"]


@pytest.mark.parametrize(("start", "end"), RANGES[:4])
@pytest.mark.parametrize("model", [None, "gpt-4"])
@pytest.mark.parametrize("size", [1, 4, 7])
def test_sessions_page_by_keyset_through_ties_both_ways(
    scenario: Filled,
    scenario_conn: psycopg.Connection[Any],
    start: date,
    end: date,
    model: str | None,
    size: int,
) -> None:
    every = scenario.oracle.sessions(start, end, model, 1000)
    filters: dict[str, Any] = {"start_date": start, "end_date": end, "model": model, "limit": size}
    pages = [queries.sessions(scenario_conn, **filters)]
    while pages[-1]:
        pages.append(queries.sessions(scenario_conn, **filters, before=pages[-1][-1].session_id))
    assert [s for page in pages for s in page] == every and all(len(p) == size for p in pages[:-2])
    back = [pages[-2]]  # from the oldest page, newer pages lead back to the latest
    while back[-1][0] != every[0]:
        back.append(queries.sessions(scenario_conn, **filters, after=back[-1][0].session_id))
    assert [s for page in reversed(back) for s in page] == every
    assert queries.sessions(scenario_conn, **filters, after=every[0].session_id) == []


def test_a_page_from_no_started_session_says_so(scenario_conn: psycopg.Connection[Any]) -> None:
    with pytest.raises(QueryError, match="before 'ghost' is no started session") as refused:
        queries.sessions(scenario_conn, before="ghost")  # a stub: its start has not arrived
    assert refused.value.param == "before"
    with pytest.raises(QueryError, match="after 'nope' is no started session"):
        queries.sessions(scenario_conn, after="nope")
    with pytest.raises(QueryError, match="before and after both given"):
        queries.sessions(scenario_conn, before="s001", after="s002")


def test_sessions_limit_is_capped_at_1000_and_must_be_positive(
    scenario_conn: psycopg.Connection[Any],
) -> None:
    assert len(queries.sessions(scenario_conn, limit=5000)) == 60  # clamped to 1000, like the seed
    with pytest.raises(QueryError, match="limit must be between 1 and 1000, got 0"):
        queries.sessions(scenario_conn, limit=0)


def test_session_detail_of_every_session(scenario: Filled, scenario_conn: psycopg.Connection[Any]) -> None:
    for sid in scenario.oracle.session_ids():
        assert queries.session_detail(scenario_conn, sid) == scenario.oracle.session_detail(sid), sid


def test_session_detail_shows_rounds_and_tool_calls_without_start_last(
    scenario_conn: psycopg.Connection[Any],
) -> None:
    detail = queries.session_detail(scenario_conn, "s010")
    assert detail is not None
    last = detail.rounds[-1]
    assert (last.round_id, last.started_at, last.model, last.duration_ms) == ("s010-rstub", None, None, None)
    assert [(t.tool_call_id, t.tool_name, t.started_at, t.success) for t in last.tool_calls] == [
        ("s010-tstub", None, None, False)
    ]
    assert all(r.started_at is not None for r in detail.rounds[:-1])


def test_session_detail_of_an_unknown_session_is_none(scenario_conn: psycopg.Connection[Any]) -> None:
    assert queries.session_detail(scenario_conn, "no-such-session") is None


@pytest.mark.parametrize(
    ("days", "end"),
    [
        (7, date(2026, 2, 10)),
        (30, date(2026, 2, 28)),
        (1, date(2026, 2, 4)),
        (0, date(2026, 2, 4)),
        (3, date(2026, 2, 1)),
    ],
)
def test_daily_metrics(
    scenario: Filled, scenario_conn: psycopg.Connection[Any], days: int, end: date
) -> None:
    assert queries.daily_metrics(scenario_conn, days=days, end_date=end) == scenario.oracle.daily(days, end)


def test_daily_metrics_days_zero_is_one_day(scenario_conn: psycopg.Connection[Any]) -> None:
    zero = queries.daily_metrics(scenario_conn, days=0, end_date=date(2026, 2, 4))
    assert zero == queries.daily_metrics(scenario_conn, days=1, end_date=date(2026, 2, 4))
    assert [d.date for d in zero] == [date(2026, 2, 4)]


def test_daily_metrics_end_date_defaults_to_today_utc(scenario_conn: psycopg.Connection[Any]) -> None:
    assert queries.daily_metrics(scenario_conn, days=7) == []  # the scenario is in February 2026


@pytest.mark.parametrize(("start", "end"), RANGES)
@pytest.mark.parametrize("endpoint", [None, "anthropic.messages", "nowhere"])
@pytest.mark.parametrize("model", [None, "claude-3"])
def test_forward_summary(
    scenario: Filled,
    scenario_conn: psycopg.Connection[Any],
    start: date,
    end: date,
    endpoint: str | None,
    model: str | None,
) -> None:
    got = queries.forward_summary(
        scenario_conn, start_date=start, end_date=end, endpoint=endpoint, model=model
    )
    assert got == scenario.oracle.forward_summary(start=start, end=end, endpoint=endpoint, model=model)


@pytest.mark.parametrize(("start", "end"), RANGES)
@pytest.mark.parametrize("model", [None, "o1-mini"])
def test_forward_by_endpoint(
    scenario: Filled, scenario_conn: psycopg.Connection[Any], start: date, end: date, model: str | None
) -> None:
    got = queries.forward_by_endpoint(scenario_conn, start_date=start, end_date=end, model=model)
    assert got == scenario.oracle.forward_by_endpoint(start=start, end=end, model=model)


@pytest.mark.parametrize(("start", "end"), RANGES[:4])
@pytest.mark.parametrize(
    ("endpoint", "model"),
    [(None, None), ("openai.responses", None), (None, "gpt-4"), ("openai.chat_completions", "llama-3")],
)
@pytest.mark.parametrize("limit", [None, 3])
def test_forward_requests(
    scenario: Filled,
    scenario_conn: psycopg.Connection[Any],
    start: date,
    end: date,
    endpoint: str | None,
    model: str | None,
    limit: int | None,
) -> None:
    got = queries.forward_requests(
        scenario_conn, start_date=start, end_date=end, endpoint=endpoint, model=model, limit=limit
    )
    assert got == scenario.oracle.forward_requests(
        limit or 100, start=start, end=end, endpoint=endpoint, model=model
    )


def test_forward_requests_token_usage_only_when_reported_and_stubs_left_out(
    scenario_conn: psycopg.Connection[Any],
) -> None:
    rows = queries.forward_requests(scenario_conn, limit=1000)
    assert len(rows) == 80 and "f-ghost" not in {r.forward_id for r in rows}
    assert any(r.token_usage is None and r.status == "success" for r in rows)
    assert all((r.completed_at is None) == (r.duration_ms is None) for r in rows)


@pytest.mark.parametrize(
    ("days", "end"), [(7, date(2026, 2, 10)), (30, date(2026, 3, 1)), (0, date(2026, 2, 7))]
)
def test_forward_daily_metrics(
    scenario: Filled, scenario_conn: psycopg.Connection[Any], days: int, end: date
) -> None:
    assert queries.forward_daily_metrics(
        scenario_conn, days=days, end_date=end
    ) == scenario.oracle.forward_daily(days, end)


def test_results_do_not_depend_on_the_session_time_zone(scenario: Filled) -> None:
    """Dates are UTC dates whatever the connection's TimeZone (the edges are at UTC midnight)."""
    with psycopg.connect(scenario.url, autocommit=True) as far_east:
        far_east.execute("SET TIME ZONE 'Pacific/Kiritimati'")  # UTC+14
        assert queries.summary(far_east, start_date=date(2026, 2, 5), end_date=date(2026, 2, 5)) == (
            scenario.oracle.summary(date(2026, 2, 5), date(2026, 2, 5))
        )
        assert queries.daily_metrics(far_east, days=10, end_date=date(2026, 2, 10)) == scenario.oracle.daily(
            10, date(2026, 2, 10)
        )
        assert queries.forward_daily_metrics(far_east, days=10, end_date=date(2026, 2, 10)) == (
            scenario.oracle.forward_daily(10, date(2026, 2, 10))
        )


@pytest.mark.parametrize(
    "call",
    [
        lambda c: queries.summary(c, start_date=date(2026, 2, 10), end_date=date(2026, 2, 9)),
        lambda c: queries.by_model(c, start_date=date(2026, 2, 10), end_date=date(2026, 2, 9)),
        lambda c: queries.sessions(c, start_date=date(2026, 2, 10), end_date=date(2026, 2, 9)),
        lambda c: queries.forward_summary(c, start_date=date(2026, 2, 10), end_date=date(2026, 2, 9)),
        lambda c: queries.forward_by_endpoint(c, start_date=date(2026, 2, 10), end_date=date(2026, 2, 9)),
        lambda c: queries.forward_requests(c, start_date=date(2026, 2, 10), end_date=date(2026, 2, 9)),
    ],
)
def test_end_date_before_start_date_is_a_query_error(
    scenario_conn: psycopg.Connection[Any], call: Any
) -> None:
    with pytest.raises(QueryError, match="end_date 2026-02-09 is before start_date 2026-02-10") as info:
        call(scenario_conn)
    assert info.value.param == "end_date"


@pytest.mark.parametrize(
    ("call", "param"),
    [
        (lambda c: queries.sessions(c, model="a\x00b"), "model"),
        (lambda c: queries.session_detail(c, "s\x00"), "session_id"),
        (lambda c: queries.forward_summary(c, endpoint="/v1\x00"), "endpoint"),
        (lambda c: queries.forward_by_endpoint(c, model="m\udcff"), "model"),
        (lambda c: queries.forward_requests(c, model="m\x00"), "model"),
    ],
)
def test_text_filters_postgresql_cannot_compare_are_query_errors(
    scenario_conn: psycopg.Connection[Any], call: Any, param: str
) -> None:
    with pytest.raises(QueryError, match=param) as info:
        call(scenario_conn)
    assert info.value.param == param


@pytest.mark.parametrize("days", [-1, queries.MAX_DAYS + 1])
def test_days_out_of_range_is_a_query_error(scenario_conn: psycopg.Connection[Any], days: int) -> None:
    with pytest.raises(QueryError, match="days must be between 1 and"):
        queries.daily_metrics(scenario_conn, days=days)
    with pytest.raises(QueryError, match="days must be between 1 and"):
        queries.forward_daily_metrics(scenario_conn, days=days)


def test_daily_window_before_year_one_is_a_query_error(scenario_conn: psycopg.Connection[Any]) -> None:
    with pytest.raises(QueryError, match="before year 1"):
        queries.daily_metrics(scenario_conn, days=10, end_date=date(1, 1, 3))


def test_reads_accept_a_pool(scenario: Filled) -> None:
    from psycopg_pool import ConnectionPool

    with ConnectionPool(scenario.url, min_size=1, max_size=1) as pool:
        assert queries.summary(pool) == scenario.oracle.summary()
        assert queries.session_detail(pool, "s010") == scenario.oracle.session_detail("s010")


def test_durations_never_negative_and_a_negative_mean_is_zero(conn: psycopg.Connection[Any]) -> None:
    """A completion stamped before its start (clock skew): no duration, and a mean below zero is 0,
    as the seed's ``d as u64``."""
    ev = Events()
    ev.forward_started("skewed", "openai.chat_completions", "gpt-4", utc(2026, 2, 1, 12))
    ev.forward_completed("skewed", utc(2026, 2, 1, 12, 0, 1), tokens=usage(1, 2))
    fill(conn, ev.events)
    conn.execute("UPDATE forward_request_metrics SET completed_at = started_at - interval '5 seconds'")
    (request,) = queries.forward_requests(conn)
    assert (request.duration_ms, request.token_usage) == (
        None,
        TokenUsage(prompt_tokens=1, completion_tokens=2, total_tokens=3),
    )
    assert queries.forward_summary(conn).avg_duration_ms == 0
    assert queries.forward_by_endpoint(conn)[0].avg_duration_ms == 0


def test_average_duration_is_truncated_not_rounded(conn: psycopg.Connection[Any]) -> None:
    ev = Events()
    start = utc(2026, 2, 1, 12)
    for n, micros in enumerate((1_999, 1_000)):  # 1.999 ms and 1.000 ms: mean 1.4995 ms -> 1
        ev.forward_started(f"f{n}", "e", "m", start)
        ev.forward_completed(f"f{n}", start + timedelta(microseconds=micros))
    ev.forward_started("pending", "e", "m", start)  # not completed: not in the mean
    fill(conn, ev.events)
    assert queries.forward_summary(conn).avg_duration_ms == 1
    assert [r.duration_ms for r in queries.forward_requests(conn)] == [None, 1, 1]


def test_sums_beyond_bigint_are_exact(db_url: str) -> None:
    """The contract allows any count up to 2^63-1; two sessions of 5e18 tokens sum past bigint.
    The reads summed with ::bigint casts and failed (a 500 on every range holding them)."""
    from contract.events import RoundCompleted, RoundStarted, SessionStarted, TokenUsage
    from worker.engine.apply import apply_events

    at = datetime(2026, 2, 10, 12, tzinfo=UTC)
    big = TokenUsage(prompt_tokens=4 * 10**18, completion_tokens=10**18, total_tokens=5 * 10**18)
    events = []
    for s in ("s1", "s2"):
        events += [
            SessionStarted(event_id=f"{s}-start", occurred_at=at, session_id=s, model="m"),
            RoundStarted(event_id=f"{s}-r", occurred_at=at, round_id=f"{s}-r", session_id=s, model="m"),
            RoundCompleted(
                event_id=f"{s}-c",
                occurred_at=at,
                round_id=f"{s}-r",
                session_id=s,
                status="success",
                usage=big,
            ),
        ]
    with psycopg.connect(db_url, autocommit=True) as conn:
        apply_events(conn, events)
        assert queries.summary(conn).total_tokens.total_tokens == 10**19
        (model,) = queries.by_model(conn)
        assert model.tokens.prompt_tokens == 8 * 10**18
        (day,) = queries.daily_metrics(conn, days=1, end_date=date(2026, 2, 10))
        assert day.total_token_usage.total_tokens == 10**19
        assert day.model_breakdown["m"].total_tokens == 10**19
