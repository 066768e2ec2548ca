"""The cost read of the last hours from the hourly roll-ups (round_hourly, forward_cost_hourly): on
the varied scenario every window of hours (any hour of the day, 1 to 168 hours, a model, a user,
a top) answers as the base rows do (the twins read while a back-fill is due)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import psycopg

from tests.read.conftest import Filled
from tests.read.scenario import BASE, DAYS
from worker.read import queries

HOUR = timedelta(hours=1)


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
