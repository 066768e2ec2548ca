"""The cost read of the last hours from the roll-ups (round_hourly, forward_hourly per hour;
user_cost_rollup per day with the sessions of the hours that differ): the ranges split_days gives
count every hour asked for once and no other, reading at most half a day of sessions at either end,
and on the varied scenario every window of hours (any hour of the day, 1 to 168 hours, a model, a
user, a top) answers as the base rows do (the twins read while a back-fill is due)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from tests.read.conftest import Filled
from tests.read.scenario import BASE, DAYS
from worker.read import queries
from worker.read.queries.cost_hours import split_days

HOUR = timedelta(hours=1)


def _counted(ranges: dict[str, Any], hour: datetime) -> int:
    """How many times the ranges count ``hour``: its day once if in the days, each range it is in."""
    day = hour.astimezone(UTC).date()
    n = int(ranges["days_from"] <= day <= ranges["days_to"])
    for prefix, sign in (("add", 1), ("add2", 1), ("sub", -1), ("sub2", -1)):
        n += sign * int(ranges[f"{prefix}_from"] <= hour < ranges[f"{prefix}_to"])
    return n


@pytest.mark.parametrize("live", [False, True])
@pytest.mark.parametrize("hours", [1, 2, 11, 12, 13, 23, 24, 25, 36, 47, 48, 49, 100, 167, 168])
def test_the_ranges_count_every_hour_of_the_span_once_and_no_other(hours: int, live: bool) -> None:
    midnight = datetime(2026, 3, 1, tzinfo=UTC)
    for start in (midnight + k * HOUR for k in range(-24, 25)):
        end = start + hours * HOUR
        ranges = split_days(start, end, live=live)
        around = [start - 48 * HOUR + k * HOUR for k in range(hours + 96)]
        assert [_counted(ranges, h) for h in around] == [int(start <= h < end) for h in around], (start, end)
        spans = {p: ranges[f"{p}_to"] - ranges[f"{p}_from"] for p in ("add", "add2", "sub", "sub2")}
        past = [d for p, d in spans.items() if not live or ranges[f"{p}_from"] < end]
        assert sum(past, timedelta(0)) <= 24 * HOUR  # at most half a day of hours at either end


def test_the_last_hours_up_to_now_read_the_last_day_whole_less_what_has_not_come() -> None:
    """What the dashboard asks (the last 24 hours up to half past 15:00): the first day's 8 hours
    added, the last day counted whole less its hours after 16:00, which have not come yet."""
    ranges = split_days(datetime(2026, 3, 1, 16, tzinfo=UTC), datetime(2026, 3, 2, 16, tzinfo=UTC), live=True)
    assert (ranges["days_from"], ranges["days_to"]) == (datetime(2026, 3, 2).date(),) * 2
    assert (ranges["add_from"], ranges["add_to"]) == (
        datetime(2026, 3, 1, 16, tzinfo=UTC),
        datetime(2026, 3, 2, tzinfo=UTC),
    )
    assert (ranges["sub_from"], ranges["sub_to"]) == (
        datetime(2026, 3, 2, 16, tzinfo=UTC),
        datetime(2026, 3, 3, tzinfo=UTC),
    )


def test_at_11_30_the_last_day_whole_less_what_has_not_come_when_live() -> None:
    start, end = datetime(2026, 3, 1, 12, tzinfo=UTC), datetime(2026, 3, 2, 12, tzinfo=UTC)
    assert split_days(start, end)["days_from"] > split_days(start, end)["days_to"]  # 12 + 12 hours
    live = split_days(start, end, live=True)
    assert (live["days_from"], live["days_to"]) == (end.date(), end.date())
    assert (live["sub_from"], live["sub_to"]) == (end, datetime(2026, 3, 3, tzinfo=UTC))


def _windows(scenario_start: datetime) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for k in range(0, 24 * (DAYS + 2), 7):  # every hour of the day, over the scenario's days
        now = scenario_start + k * HOUR + timedelta(minutes=30)
        for hours in (1, 5, 13, 24, 48, 168):
            out.append({"hours": hours, "now": now})
    return out


def test_every_window_of_hours_answers_as_the_base_rows(scenario: Filled) -> None:
    with psycopg.connect(scenario.url) as conn:  # not autocommit: the second half is rolled back
        users = [u for (u,) in conn.execute("SELECT DISTINCT user_id FROM session_metrics ORDER BY 1")]
        windows = _windows(BASE - timedelta(days=1))
        filters: list[dict[str, Any]] = [{}, {"model": "gpt-4"}, {"user_id": users[0]}, {"top": 2}]
        reads = [queries.cost(conn, **w, **f) for w in windows for f in filters]
        assert any(r.by_user for r in reads) and any(r.round_usd for r in reads)
        conn.execute("UPDATE rollup_backfill SET done = false, upto = NULL")
        again = [queries.cost(conn, **w, **f) for w in windows for f in filters]
        conn.rollback()
    assert reads == again
