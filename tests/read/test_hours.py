"""The aggregate reads over the last N UTC hours (summary, per model, tools, forwards, cost, the
overview) on a hand-made history written through the apply engine: the library, `metrics-worker
query ... --hours N` and the API (`hours=`) give the figures counted by hand below, the same as
whole dates where the hours are whole dates, and refuse hours together with a date."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from starlette.exceptions import StarletteDeprecationWarning

from tests.conftest import Services
from tests.read.conftest import filled_schema
from tests.read.events import Events, usage
from tests.read.helpers import half_past_this_hour
from worker import cli
from worker.read import queries
from worker.read.api import create_app
from worker.read.queries import QueryError

with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

# Half past the current UTC hour: "the last hour" is this hour, whatever minute the test runs in.
NOW = datetime.now(UTC).replace(minute=30, second=0, microsecond=0)
# gpt-4o at $2.50 per million prompt tokens and $10 per million completion tokens.
SMALL_USD = Decimal("0.0035")  # 1,000 prompt + 100 completion tokens
OLD_USD = Decimal("0.005")  # 2,000 prompt tokens


def _history(now: datetime = NOW) -> Events:
    ev = Events()
    # Session a (user ua), this hour: a $0.0035 round, three tool calls (ok, failed, unfinished).
    ev.session_started("a", "gpt-4o", now - timedelta(minutes=20), user_id="ua")
    ev.round_started("a1", "a", "gpt-4o", now - timedelta(minutes=19), provider="openai")
    ev.tool_started("t1", "a1", "a", "grep", now - timedelta(minutes=19))
    ev.tool_completed("t1", "a1", "a", now - timedelta(minutes=18))
    ev.tool_started("t2", "a1", "a", "grep", now - timedelta(minutes=18))
    ev.tool_completed("t2", "a1", "a", now - timedelta(minutes=17), success=False, error="no match")
    ev.tool_started("t3", "a1", "a", "edit", now - timedelta(minutes=17))
    ev.round_completed("a1", "a", now - timedelta(minutes=16), usage(1000, 100))
    ev.session_completed("a", "completed", now - timedelta(minutes=1))
    # Session b (user ub), three hours ago, still running: a round of a model no list knows.
    ev.session_started("b", "acme-unknown-9", now - timedelta(hours=3), user_id="ub")
    ev.round_started("b1", "b", "acme-unknown-9", now - timedelta(hours=3))
    ev.tool_started("t4", "b1", "b", "grep", now - timedelta(hours=3))
    ev.tool_completed("t4", "b1", "b", now - timedelta(hours=3) + timedelta(seconds=1))
    ev.round_completed("b1", "b", now - timedelta(hours=3) + timedelta(seconds=5), usage(10, 5))
    # Session c (user ua), 30 hours ago: a $0.005 round.
    ev.session_started("c", "gpt-4o", now - timedelta(hours=30), user_id="ua")
    ev.round_started("c1", "c", "gpt-4o", now - timedelta(hours=30), provider="openai")
    ev.round_completed("c1", "c", now - timedelta(hours=30) + timedelta(seconds=3), usage(2000, 0))
    # Forwards: a $0.0035 one of 500 ms this hour, a failed one 5 hours ago, one 30 hours ago.
    ev.forward_started("f1", "/v1/chat", "gpt-4o", now - timedelta(minutes=10), provider="openai")
    ev.forward_completed(
        "f1", now - timedelta(minutes=10) + timedelta(milliseconds=500), tokens=usage(1000, 100)
    )
    ev.forward_started("f2", "/v1/chat", "gpt-4o", now - timedelta(hours=5))
    ev.forward_completed(
        "f2", now - timedelta(hours=5, seconds=-1), status="error", status_code=502, error="bad"
    )
    ev.forward_started("f3", "/v1/embed", "gpt-4o", now - timedelta(hours=30))
    ev.forward_completed("f3", now - timedelta(hours=30, seconds=-1), status_code=200)
    ev.sync_mismatch("title", now - timedelta(minutes=10))
    return ev


@pytest.fixture(scope="module")
def url(services: Services) -> Iterator[str]:
    with filled_schema(services, _history().events) as url:
        yield url


@pytest.fixture
def live_url(services: Services) -> Iterator[str]:
    """The same rows around half past the hour the clock is in when the test starts (never within
    two minutes of its end): for the CLI and the API, which read the last hours from the clock."""
    with filled_schema(services, _history(half_past_this_hour()).events) as url:
        yield url


@pytest.fixture
def db(url: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(url, autocommit=True) as conn:
        yield conn


def test_the_summary_and_per_model_count_the_sessions_of_those_hours(db: psycopg.Connection[Any]) -> None:
    hour = queries.summary(db, hours=1, now=NOW)
    assert (hour.total_sessions, hour.completed_sessions, hour.active_sessions) == (1, 1, 0)
    assert (hour.total_tokens.prompt_tokens, hour.total_tokens.completion_tokens, hour.total_tool_calls) == (
        1000,
        100,
        3,
    )
    assert hour.sync_mismatch_breakdown == {"title": 1}  # kept per UTC date: those of today
    six = queries.summary(db, hours=6, now=NOW)
    assert (six.total_sessions, six.completed_sessions, six.active_sessions, six.total_tool_calls) == (
        2,
        1,
        1,
        4,
    )
    assert queries.summary(db, hours=48, now=NOW).total_sessions == 3
    models = queries.by_model(db, hours=6, now=NOW)
    assert [(m.model, m.sessions, m.rounds, m.tokens.total_tokens) for m in models] == [
        ("gpt-4o", 1, 1, 1100),
        ("acme-unknown-9", 1, 1, 15),
    ]
    assert next((m.model, m.sessions) for m in queries.by_model(db, hours=48, now=NOW)) == ("gpt-4o", 2)


def test_tools_and_forwards_of_those_hours(db: psycopg.Connection[Any]) -> None:
    tools = queries.tool_metrics(db, hours=1, now=NOW)
    assert [(t.tool_name, t.calls, t.succeeded, t.failed, t.unfinished) for t in tools] == [
        ("grep", 2, 1, 1, 0),
        ("edit", 1, 0, 0, 1),
    ]
    assert next((t.tool_name, t.calls, t.succeeded) for t in queries.tool_metrics(db, hours=6, now=NOW)) == (
        "grep",
        3,
        2,
    )
    hour = queries.forward_summary(db, hours=1, now=NOW)
    assert (hour.total_requests, hour.successful_requests, hour.avg_duration_ms) == (1, 1, 500)
    six = queries.forward_summary(db, hours=6, now=NOW)
    assert (six.total_requests, six.successful_requests, six.failed_requests) == (2, 1, 1)
    assert queries.forward_summary(db, hours=6, now=NOW, endpoint="/v1/embed").total_requests == 0
    endpoints = queries.forward_by_endpoint(db, hours=48, now=NOW)
    assert [(e.endpoint, e.requests, e.failed) for e in endpoints] == [
        ("/v1/chat", 2, 1),
        ("/v1/embed", 1, 0),
    ]


def test_the_cost_of_those_hours(db: psycopg.Connection[Any]) -> None:
    hour = queries.cost(db, hours=1, now=NOW)
    assert (hour.round_usd, hour.priced_rounds, hour.unpriced_rounds) == (SMALL_USD, 1, 0)
    assert (hour.forward_usd, hour.priced_forwards) == (SMALL_USD, 1)
    assert [(u.user_id, u.cost_usd) for u in hour.by_user] == [("ua", SMALL_USD)]
    assert [s.session_id for s in hour.top_sessions] == ["a"]
    six = queries.cost(db, hours=6, now=NOW)
    assert (six.round_usd, six.unpriced_rounds) == (SMALL_USD, 1)
    assert [(m.model, m.priced_rounds, m.unpriced_rounds) for m in six.by_model] == [
        ("gpt-4o", 1, 0),
        ("acme-unknown-9", 0, 1),  # unpriced: counted, never $0
    ]
    two_days = queries.cost(db, hours=48, now=NOW)
    assert two_days.round_usd == SMALL_USD + OLD_USD
    assert [(u.user_id, u.cost_usd) for u in two_days.by_user] == [("ua", SMALL_USD + OLD_USD), ("ub", 0)]
    assert queries.cost(db, hours=48, now=NOW, user_id="ub").round_usd == 0
    assert queries.cost(db, hours=48, now=NOW, model="gpt-4o").unpriced_rounds == 0


def test_whole_dates_as_hours_answer_as_the_dates(db: psycopg.Connection[Any]) -> None:
    """48 hours ending with today are yesterday and today: the base tables through the hours, the
    roll-ups through the dates, the same answer."""
    today = NOW.date()
    dates = {"start_date": today - timedelta(days=1), "end_date": today}
    hours = {"hours": 48, "now": datetime.combine(today, datetime.max.time(), UTC)}
    assert queries.summary(db, **hours) == queries.summary(db, **dates)  # type: ignore[arg-type]
    assert queries.by_model(db, **hours) == queries.by_model(db, **dates)  # type: ignore[arg-type]
    assert queries.tool_metrics(db, **hours) == queries.tool_metrics(db, **dates)  # type: ignore[arg-type]
    assert queries.forward_summary(db, **hours) == queries.forward_summary(db, **dates)  # type: ignore[arg-type]
    assert queries.forward_by_endpoint(db, **hours) == queries.forward_by_endpoint(db, **dates)  # type: ignore[arg-type]
    assert queries.cost(db, **hours) == queries.cost(db, **dates)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "read",
    [
        queries.summary,
        queries.by_model,
        queries.tool_metrics,
        queries.forward_summary,
        queries.forward_by_endpoint,
        queries.cost,
    ],
)
def test_hours_with_a_date_is_refused_naming_both(db: psycopg.Connection[Any], read: Any) -> None:
    with pytest.raises(QueryError, match=r"^hours=6 and end_date=2026-01-02: .* not both$"):
        read(db, hours=6, end_date=datetime(2026, 1, 2).date())
    with pytest.raises(QueryError, match="hours must be between 1 and 168, got 169"):
        read(db, hours=169)


def test_the_cli_and_the_api(
    live_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = live_url
    monkeypatch.setenv("DATABASE_URL", url)
    assert cli.main(["query", "summary", "--hours", "6", "--json"]) == 0
    from_cli = json.loads(capsys.readouterr().out)
    assert from_cli["total_sessions"] == 2
    assert cli.main(["query", "tools", "--hours", "1", "--csv"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "tool,calls,succeeded,failed,unfinished,failure share",
        "grep,2,1,1,0,50.0%",
        "edit,1,0,0,1,",
    ]
    assert cli.main(["query", "cost", "--hours", "6", "--json"]) == 0  # the README's commands
    assert Decimal(json.loads(capsys.readouterr().out)["round_usd"]) == SMALL_USD
    assert cli.main(["query", "forward-endpoints", "--hours", "6"]) == 0
    assert "/v1/chat" in capsys.readouterr().out
    assert cli.main(["query", "summary", "--hours", "6", "--start-date", "2026-01-01"]) == 2
    assert (
        capsys.readouterr()
        .err.strip()
        .endswith("--hours 6 and --start-date 2026-01-01: give the last N hours or a date range, not both")
    )
    with TestClient(create_app(url)) as client:
        assert client.get("/v1/summary", params={"hours": 6}).json() == from_cli
        assert [m["model"] for m in client.get("/v1/models", params={"hours": 6}).json()] == [
            "gpt-4o",
            "acme-unknown-9",
        ]
        assert client.get("/v1/tools", params={"hours": 1}).json()[0]["calls"] == 2
        assert client.get("/v1/forward/summary", params={"hours": 6}).json()["failed_requests"] == 1
        assert len(client.get("/v1/forward/endpoints", params={"hours": 48}).json()) == 2
        assert (
            Decimal(client.get("/v1/cost", params={"hours": 48}).json()["round_usd"]) == SMALL_USD + OLD_USD
        )
        overview = client.get("/v1/overview", params={"hours": 6}).json()
        assert overview["hours"] == 6 and overview["daily"] == []
        assert overview["summary"]["total_sessions"] == 2
        assert [t["tool_name"] for t in overview["tools"]] == ["grep", "edit"]
        assert [p["rounds"] for p in overview["series"]["points"]][-4:] == [1, 0, 0, 1]
        week = client.get("/v1/overview").json()
        assert week["hours"] is None and week["series"] is None and week["summary"]["total_sessions"] == 3
        refused = client.get("/v1/cost", params={"hours": 6, "start_date": "2026-01-01"})
        assert refused.status_code == 422
        (detail,) = refused.json()["detail"]
        assert detail["loc"] == ["query", "hours"]
        assert (
            detail["msg"]
            == "hours=6 and start_date=2026-01-01: give the last N hours or a date range, not both"
        )
        assert client.get("/v1/overview", params={"hours": 6, "end_date": "2026-01-01"}).status_code == 422
        assert client.get("/v1/summary", params={"hours": 0}).status_code == 422
