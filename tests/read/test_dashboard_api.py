"""The API routes the dashboard reads beyond the seed's: overview, tools, forward statuses, pipeline
health; against the scenario's oracle (computed from the events) and a real Redis."""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import redis
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
    assert client.get("/v1/pipeline").json() == {
        "configured": False,
        "group": None,
        "streams": [],
        "dead_letter_key": None,
        "dead_letters": 0,
        "latest_dead_letters": [],
    }


def test_the_pipeline_reads_streams_consumers_and_dead_letters(
    scenario: Filled,
    redis_url: str,
    key_prefix: str,
    redis_client: redis.Redis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stream = f"{key_prefix}:events"
    monkeypatch.setenv("METRICS_STREAM", stream)
    monkeypatch.setenv("METRICS_SHARDS", "2")
    monkeypatch.setenv("METRICS_GROUP", "g")
    first, second = f"{stream}:{{0}}", f"{stream}:{{1}}"
    for i in range(5):
        redis_client.xadd(first, {"event": f"{i}"})
    redis_client.xgroup_create(first, "g", id="0")
    redis_client.xreadgroup("g", "reader-1", {first: ">"}, count=3)  # 3 pending, 2 undelivered
    for reason in ("first reason", "latest reason"):
        redis_client.xadd(
            f"{stream}:dead", {"payload": b"x", "stream": first, "deliveries": 2, "reason": reason}
        )
    counts_lag = "lag" in redis_client.xinfo_groups(first)[0]  # Redis 7; 6.2 cannot say how many
    with TestClient(create_app(scenario.url, tokens=[], redis_url=redis_url)) as client:
        health: dict[str, Any] = client.get("/v1/pipeline").json()
    assert health["configured"] and health["group"] == "g"
    assert [(s["stream"], s["length"], s["undelivered"], s["pending"]) for s in health["streams"]] == [
        (first, 5, 2 if counts_lag else None, 3),
        (second, 0, 0, 0),
    ]
    (consumer,) = health["streams"][0]["consumers"]
    assert (consumer["name"], consumer["pending"]) == ("reader-1", 3)
    assert (health["dead_letter_key"], health["dead_letters"]) == (f"{stream}:dead", 2)
    assert [d["reason"] for d in health["latest_dead_letters"]] == ["latest reason", "first reason"]
    assert health["latest_dead_letters"][0]["deliveries"] == 2


def test_a_redis_that_is_away_is_503(scenario: Filled) -> None:
    with TestClient(create_app(scenario.url, tokens=[], redis_url="redis://127.0.0.1:1/0")) as client:
        response = client.get("/v1/pipeline")
    assert response.status_code == 503 and response.json()["detail"].startswith("redis unavailable")
