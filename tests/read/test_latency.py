"""The latency and hourly reads on a hand-made example: the library, `metrics-worker query` and the
API give the percentiles the bucket rule says, over the last hours or whole dates."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.exceptions import StarletteDeprecationWarning

from tests.conftest import Services
from tests.read.conftest import filled_schema
from tests.read.events import Events, usage
from tests.read.helpers import half_past_this_hour
from worker import cli
from worker.engine import histogram
from worker.engine.histogram import MAX_INDEX, MIN_INDEX, RELATIVE_ERROR, bucket, value
from worker.read import queries
from worker.read.api import create_app
from worker.read.queries import QueryError
from worker.read.queries._base import sum_packed

with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

NOW = datetime.now(UTC).replace(minute=30, second=0, microsecond=0)
# Rounds of model m1 in the current hour: durations and times to first token in ms.
DURATIONS = [100, 200, 300, 1000]
TTFTS = [50, 60, 70, 80]


def _example(now: datetime = NOW) -> Events:
    ev = Events()
    ev.session_started("s1", "m1", now - timedelta(hours=3))
    for i, (ms, ttft) in enumerate(zip(DURATIONS, TTFTS, strict=True)):
        at = now - timedelta(minutes=20) + timedelta(seconds=i)
        ev.round_started(f"r{i}", "s1", "m1", at)
        ev.round_completed(f"r{i}", "s1", at + timedelta(milliseconds=ms), usage(10, 5), ttft=ttft)
    # Two hours before: one failed round, and a tool call of 40 ms.
    ev.round_started("old", "s1", "m1", now - timedelta(hours=2))
    ev.round_completed(
        "old", "s1", now - timedelta(hours=2) + timedelta(seconds=5), usage(1, 1), status="error"
    )
    ev.tool_started("t1", "old", "s1", "grep", now - timedelta(hours=2))
    ev.tool_completed("t1", "old", "s1", now - timedelta(hours=2) + timedelta(milliseconds=40))
    ev.forward_started("f1", "/v1/chat", "m1", now - timedelta(minutes=5), stream=True)
    ev.forward_completed("f1", now - timedelta(minutes=5) + timedelta(milliseconds=750), ttft=120)
    return ev


@pytest.fixture(scope="module")
def url(services: Services) -> Iterator[str]:
    with filled_schema(services, _example().events) as url:
        yield url


@pytest.fixture
def live_url(services: Services) -> Iterator[str]:
    """The same rows around half past the hour the clock is in when the test starts (never within
    two minutes of its end): for the CLI and the API, which read the last hours from the clock."""
    with filled_schema(services, _example(half_past_this_hour()).events) as url:
        yield url


@pytest.fixture
def db(url: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(url, autocommit=True) as conn:
        yield conn


def _at(ms: float) -> float:
    return value(bucket(ms))


def test_the_last_hour_gives_the_bucket_of_percentile_disc(db: psycopg.Connection[Any]) -> None:
    read = queries.latency(db, hours=1, now=NOW)
    (m1,) = read.models
    # percentile_disc's ranks over 4 values: p50 the 2nd, p90/p95/p99 the 4th.
    assert (m1.duration.count, m1.duration.p50, m1.duration.p90, m1.duration.p99) == (
        4,
        _at(200),
        _at(1000),
        _at(1000),
    )
    assert abs(m1.duration.p50 - 200) <= RELATIVE_ERROR * 200  # type: ignore[operator]
    assert (m1.time_to_first_token.count, m1.time_to_first_token.p50) == (4, _at(60))
    assert read.tools == []  # the tool call was two hours ago
    (chat,) = read.endpoints
    assert (chat.duration.p95, chat.time_to_first_token.p50) == (_at(750), _at(120))
    three = queries.latency(db, hours=3, now=NOW)
    assert three.models[0].duration.count == 5 and three.tools[0].duration.p50 == _at(40)
    day = NOW.date()  # two whole dates: the same rows as the 48 hours up to the end of today
    by_dates = queries.latency(db, start_date=day - timedelta(days=1), end_date=day)
    by_hours = queries.latency(db, hours=48, now=datetime.combine(day, datetime.max.time(), UTC))
    assert (by_dates.start, by_dates.end) == (by_hours.start, by_hours.end)
    assert by_dates == by_hours


def test_the_hourly_series_has_every_hour(db: psycopg.Connection[Any]) -> None:
    series = queries.hourly_series(db, hours=6, now=NOW)
    assert [p.hour for p in series.points] == [
        NOW.replace(minute=0) - timedelta(hours=h) for h in (5, 4, 3, 2, 1, 0)
    ]
    last, two_ago = series.points[-1], series.points[-3]
    assert (last.rounds, last.errors, last.tokens.total_tokens, last.duration.p50) == (4, 0, 60, _at(200))
    assert (last.cost_usd, last.unpriced_rounds) == (0, 4)  # m1: no price list knows it, never $0
    assert (two_ago.rounds, two_ago.errors, two_ago.duration.p50) == (1, 1, _at(5000))
    assert series.points[0].rounds == 0 and series.points[0].duration.p50 is None
    assert queries.hourly_series(db, hours=6, now=NOW, model="other").points[-1].rounds == 0


def test_hours_are_checked(db: psycopg.Connection[Any]) -> None:
    with pytest.raises(QueryError, match="hours must be between 1 and 168"):
        queries.hourly_series(db, hours=169)
    with pytest.raises(QueryError, match="not both"):
        queries.latency(db, hours=2, start_date=NOW.date())


def test_the_cli_and_the_api_answer_the_same(
    live_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = live_url
    monkeypatch.setenv("DATABASE_URL", url)
    assert cli.main(["query", "latency", "--hours", "24", "--json"]) == 0
    from_cli = json.loads(capsys.readouterr().out)
    assert cli.main(["query", "series", "--hours", "3", "--csv"]) == 0
    csv = capsys.readouterr().out.splitlines()
    assert csv[0].startswith("hour (UTC),rounds,errors") and len(csv) == 4
    assert cli.main(["query", "latency"]) == 0
    assert "Rounds by model" in capsys.readouterr().out
    with TestClient(create_app(url)) as client:
        got = client.get("/v1/latency", params={"hours": 24})
        assert got.status_code == 200
        assert got.json()["models"] == from_cli["models"]
        series = client.get("/v1/series", params={"hours": 2, "model": "m1"}).json()
        assert [p["rounds"] for p in series["points"]] == [0, 4]
        assert client.get("/v1/series", params={"hours": 0}).status_code == 422
        assert client.get("/v1/latency", params={"hours": 2, "start_date": "2026-01-01"}).status_code == 422


# What a latency row holds: a first bucket and dense counts (empty arrays too, which the read skips).
_ROWS = st.lists(
    st.tuples(st.integers(MIN_INDEX - 1, MAX_INDEX - 30), st.lists(st.integers(0, 2**31 - 1), max_size=30)),
    max_size=6,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=_ROWS)
def test_arrays_packed_by_postgresql_sum_as_the_rows_do(
    db: psycopg.Connection[Any], rows: list[tuple[int, list[int]]]
) -> None:
    """The reads of hours pack a name's arrays in SQL (array_agg of lo and cardinality, string_agg
    of array_send without its header); sum_packed gives what histogram.sum_dense gives for the rows."""
    los, sizes, packed = db.execute(
        "SELECT array_agg(lo ORDER BY k), array_agg(cardinality(counts) ORDER BY k),"
        " string_agg(substring(array_send(counts) FROM 21), ''::bytea ORDER BY k)"
        " FROM unnest(%(los)s::int[], %(counts)s::text[]) WITH ORDINALITY AS r(lo, c, k),"
        " LATERAL (SELECT c::int[] AS counts) AS a",
        {"los": [lo for lo, _ in rows], "counts": ["{" + ",".join(map(str, c)) + "}" for _, c in rows]},
    ).fetchone()  # type: ignore[misc]
    first, total = sum_packed(los, sizes, packed)
    want_first, want_total = histogram.sum_dense(rows)
    assert (first, total.tolist()) == (want_first, want_total.tolist())
    assert total.dtype == np.int64


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=_ROWS, stored=st.lists(st.booleans(), min_size=6, max_size=6))
def test_arrays_stored_raw_sum_with_the_packed_ones(
    db: psycopg.Connection[Any], rows: list[tuple[int, list[int]]], stored: list[bool]
) -> None:
    """The arrays of compacted hours come apart, as stored (schema.sql: metrics_histogram_raw, the
    values without their lengths); sum_packed adds them to the packed ones as sum_dense adds the rows."""
    found = db.execute(
        "SELECT array_agg(lo ORDER BY k) FILTER (WHERE NOT s),"
        " array_agg(cardinality(counts) ORDER BY k) FILTER (WHERE NOT s),"
        " string_agg(substring(array_send(counts) FROM 21), ''::bytea ORDER BY k) FILTER (WHERE NOT s),"
        " array_agg(lo ORDER BY k) FILTER (WHERE s),"
        " array_agg(cardinality(counts) ORDER BY k) FILTER (WHERE s),"
        " string_agg(metrics_histogram_raw(counts), ''::bytea ORDER BY k) FILTER (WHERE s)"
        " FROM unnest(%(los)s::int[], %(counts)s::text[], %(stored)s::bool[])"
        " WITH ORDINALITY AS r(lo, c, s, k), LATERAL (SELECT c::int[] AS counts) AS a",
        {
            "los": [lo for lo, _ in rows],
            "counts": ["{" + ",".join(map(str, c)) + "}" for _, c in rows],
            "stored": stored[: len(rows)],
        },
    ).fetchone()
    assert found is not None
    first, total = sum_packed(*found)
    want_first, want_total = histogram.sum_dense(rows)
    assert (first, total.tolist()) == (want_first, want_total.tolist())


def test_packed_arrays_that_do_not_add_up_are_refused() -> None:
    two = b"\x00\x00\x00\x04\x00\x00\x00\x07" * 2
    assert sum_packed([5], [2], two)[1].tolist() == [7, 7]
    with pytest.raises(ValueError, match="1 sizes summing to 3 for 1 arrays and 2 elements"):
        sum_packed([5], [3], two)
    with pytest.raises(ValueError, match="1 of them not 4 bytes"):
        sum_packed([5], [2], b"\xff\xff\xff\xff" + two[4:])
    assert sum_packed([5], [2], two, [6], [1], b"\x00\x00\x00\x03")[1].tolist() == [7, 10]
    with pytest.raises(ValueError, match="raw counts: 1 sizes summing to 2 for 1 arrays and 1 elements"):
        sum_packed(None, None, None, [6], [2], b"\x00\x00\x00\x03")
