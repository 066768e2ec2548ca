"""The API routes the dashboard reads beyond the seed's: overview, tools, forward statuses, pipeline
health; against the scenario's oracle (computed from the events) and a real Redis."""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest
from starlette.exceptions import StarletteDeprecationWarning

with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

from tests.read.conftest import Filled
from tests.read.scenario import _in
from worker.read.api import create_app

DATES = {"start_date": "2026-02-02", "end_date": "2026-02-06"}
D1, D2 = date(2026, 2, 2), date(2026, 2, 6)


@pytest.fixture(scope="module")
def client(scenario: Filled) -> Iterator[TestClient]:
    with TestClient(create_app(scenario.url, tokens=[], redis_url="")) as test_client:
        yield test_client


def test_the_overview_is_the_summary_the_days_and_the_tools(client: TestClient) -> None:
    overview = client.get("/v1/overview", params=DATES).json()
    assert (overview["start_date"], overview["end_date"]) == (DATES["start_date"], DATES["end_date"])
    assert overview["summary"] == client.get("/v1/summary", params=DATES).json()
    assert overview["daily"] == client.get("/v1/daily", params={"days": 5, "end_date": "2026-02-06"}).json()
    assert overview["tools"] == client.get("/v1/tools", params=DATES).json()


def test_the_overview_defaults_to_the_last_seven_utc_days(client: TestClient) -> None:
    today = datetime.now(UTC).date()
    overview = client.get("/v1/overview").json()
    assert (overview["start_date"], overview["end_date"]) == (str(today - timedelta(days=6)), str(today))
    response = client.get("/v1/overview", params={"start_date": "2026-02-06", "end_date": "2026-02-02"})
    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["query", "end_date"]


def test_tools_count_calls_and_failures_per_tool(client: TestClient, scenario: Filled) -> None:
    calls: Counter[str] = Counter()
    ok: Counter[str] = Counter()
    failed: Counter[str] = Counter()
    for t in scenario.oracle.t.values():
        if t.name is None or not _in(t.started_at, D1, D2):
            continue
        calls[t.name] += 1
        ok[t.name] += t.success is True
        failed[t.name] += t.success is False
    got = client.get("/v1/tools", params=DATES).json()
    assert {t["tool_name"]: (t["calls"], t["succeeded"], t["failed"]) for t in got} == {
        name: (calls[name], ok[name], failed[name]) for name in calls
    }
    assert [t["calls"] for t in got] == sorted((t["calls"] for t in got), reverse=True)
    for t in got:
        assert t["unfinished"] == t["calls"] - t["succeeded"] - t["failed"]
        finished = t["succeeded"] + t["failed"]
        assert t["failure_share"] == (t["failed"] / finished if finished else None)
    assert any(t["failed"] for t in got), "the scenario has failing tool calls"


def test_forward_statuses_split_each_endpoints_requests(client: TestClient, scenario: Filled) -> None:
    expected: dict[str, Counter[str]] = {}
    for row in scenario.oracle.forward_rows(start=D1, end=D2, model="gpt-4"):
        expected.setdefault(row.endpoint, Counter())[row.status] += 1
    got = client.get("/v1/forward/statuses", params={**DATES, "model": "gpt-4"}).json()
    assert {s["endpoint"]: {k: s[k] for k in ("success", "error", "timeout", "pending")} for s in got} == {
        e: {k: c[k] for k in ("success", "error", "timeout", "pending")} for e, c in expected.items()
    }
    assert all(s["requests"] == s["success"] + s["error"] + s["timeout"] + s["pending"] for s in got)


def test_without_redis_the_pipeline_is_not_configured(client: TestClient) -> None:
    view = client.get("/v1/pipeline").json()
    assert view["configured"] is False and view["group"] is None
    assert (view["streams"], view["dead_letters"], view["latest_dead_letters"]) == ([], 0, [])


# What the pipeline shows with Redis: tests/test_pipeline_status.py (one Redis, K shards) and
# tests/cluster/test_status_cluster.py, each against metrics-worker status --json.


def test_a_redis_that_is_away_is_503(scenario: Filled) -> None:
    with TestClient(create_app(scenario.url, tokens=[], redis_url="redis://127.0.0.1:1/0")) as client:
        response = client.get("/v1/pipeline")
    assert response.status_code == 503 and response.json()["detail"].startswith("redis unavailable")
