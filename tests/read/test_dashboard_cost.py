"""The dashboard's cost and latency in a real Chromium, over a hand-computed history: the
overview's first screen shows /v1/cost's exact USD (the $3.25 example of tests/engine/costs.py and
a $0.0035 round) and the unpriced round as a count, its latency table is /v1/latency's, the last
1/6/24 hours switch to hourly points and to the cost and sessions of those hours, and a session
shows each round's cost and time to first token, its cost, its user and its forwards."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from tests.conftest import Services
from tests.engine.costs import EXAMPLE_USD, example_history
from tests.read.browser import CHROMIUM, Watched, get, week
from tests.read.conftest import filled_schema, metrics_api
from tests.read.events import Events, usage

pytestmark = pytest.mark.acceptance

if not CHROMIUM.exists():
    if os.environ.get("CI"):
        pytest.fail(f"{CHROMIUM} is missing: .ci/run installs Debian's chromium", pytrace=False)
    pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)", allow_module_level=True)

from playwright.sync_api import Browser, expect, sync_playwright  # noqa: E402


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield launched
        launched.close()


# Round r3: gpt-4o, 1,000 prompt and 100 completion tokens: 1,000 x $2.50 + 100 x $10 per million.
SMALL_USD = Decimal("0.0035")
TOTAL_USD = EXAMPLE_USD + SMALL_USD  # 3.2535: r1 and r3; r2's model no price list knows


@pytest.fixture(scope="module")
def priced(services: Services) -> Iterator[str]:
    """metrics-api over session s1 of user u1, two hours ago: the $3.25 round r1, the unpriced
    round r2, the $0.0035 round r3 (2.5 s, first token after 450 ms), the forward f1. Its URL."""
    at = (datetime.now(UTC) - timedelta(hours=2)).replace(microsecond=0)
    ev = Events()
    ev.round_started("r3", "s1", "gpt-4o", at + timedelta(seconds=1), provider="openai")
    ev.round_completed("r3", "s1", at + timedelta(seconds=3.5), usage(1_000, 100), ttft=450)
    with filled_schema(services, [*example_history(at), *ev.events]) as url:
        env = dict(os.environ, DATABASE_URL=url)
        for name in ("REDIS_URL", "METRICS_API_TOKENS", "METRICS_API_TOKENS_FILE"):
            env.pop(name, None)
        with metrics_api(env, "--log-level", "warning") as served:
            yield served.url


@pytest.fixture
def watched(browser: Browser) -> Iterator[Watched]:
    w = Watched(browser)
    yield w
    w.context.close()


def _tile(page: Any, key: str) -> Any:
    return page.locator(f'.tile[data-key="{key}"]')


def _latency_rows(page: Any) -> list[Any]:
    """The latency table as [model, {"duration.p50": ms, ...}], the ms read from data-ms."""
    return page.locator("table.latency tbody tr").evaluate_all(
        "rs => rs.map(r => [r.dataset.model, Object.fromEntries([...r.querySelectorAll('td.ms')]"
        ".map(c => [c.dataset.key, c.dataset.ms === '' ? null : Number(c.dataset.ms)]))])"
    )


def _expected_latency(latency: dict[str, Any]) -> list[Any]:
    return [
        [
            m["model"],
            {
                f"{what}.{p}": m[what][p]
                for what in ("duration", "time_to_first_token")
                for p in ("p50", "p95", "p99")
            },
        ]
        for m in latency["models"]
    ]


def test_the_first_screen_shows_the_cost_of_the_api(priced: str, watched: Watched) -> None:
    page = watched.page
    page.goto(f"{priced}/")
    watched.drawn()
    cost = get(priced, "/v1/cost", **week())
    assert Decimal(cost["round_usd"]) == TOTAL_USD and Decimal(cost["forward_usd"]) == EXAMPLE_USD
    # The exact decimal string of the API, shown with cents; the unpriced round as a count.
    expect(_tile(page, "round_usd")).to_have_attribute("data-value", cost["round_usd"])
    expect(_tile(page, "round_usd").locator(".value")).to_have_text("$3.25")
    expect(_tile(page, "forward_usd")).to_have_attribute("data-value", cost["forward_usd"])
    expect(_tile(page, "unpriced_rounds")).to_have_attribute("data-value", "1")
    expect(_tile(page, "unpriced_rounds").locator(".value")).to_have_text("1")
    expect(_tile(page, "priced_rounds")).to_have_attribute("data-value", "2")
    per_day = float(_tile(page, "per_day").get_attribute("data-value"))
    assert per_day == pytest.approx(float(TOTAL_USD) / 7)
    # The stacked chart: one model priced (gpt-4o), its bars add up to the total.
    stack = page.evaluate(
        "() => { const u = window.dashboard.charts.cost; return [u.series.slice(1).map(s => s.label),"
        " u.data[1].reduce((a, b) => a + b, 0), u.data[0].length]; }"
    )
    assert stack[0] == ["gpt-4o"] and stack[1] == pytest.approx(float(TOTAL_USD)) and stack[2] == 7
    # Top sessions and users by cost, as the API has them.
    sessions = page.locator("table.top-sessions tbody tr").evaluate_all(
        "rs => rs.map(r => [r.dataset.session, r.querySelector('td.usd').dataset.usd])"
    )
    assert sessions == [[s["session_id"], s["cost_usd"]] for s in cost["top_sessions"]] == [["s1", "3.2535"]]
    users = page.locator("table.top-users tbody tr").evaluate_all(
        "rs => rs.map(r => [r.dataset.user, r.querySelector('td.usd').dataset.usd])"
    )
    assert users == [[u["user_id"], u["cost_usd"]] for u in cost["by_user"]] == [["u1", "3.2535"]]
    # The latency table is /v1/latency's, every percentile of every model.
    latency = get(priced, "/v1/latency", **week())
    assert _latency_rows(page) == _expected_latency(latency)
    assert {m["model"] for m in latency["models"]} >= {"gpt-4o"}
    gpt = next(m for m in latency["models"] if m["model"] == "gpt-4o")
    assert gpt["time_to_first_token"]["count"] == 1
    assert gpt["time_to_first_token"]["p50"] == pytest.approx(450, rel=0.011)
    watched.shot("overview-cost")
    assert watched.problems == []


def test_the_last_hours_switch_to_hourly_series(priced: str, watched: Watched) -> None:
    page = watched.page
    page.goto(f"{priced}/")
    watched.drawn()
    expect(page.locator("#range")).to_be_visible()
    for n, hours in enumerate(("6", "24", "1"), start=2):
        page.select_option("select[name=range]", hours)
        page.wait_for_url(f"**hours={hours}**")
        watched.drawn(n)
        expect(page.locator("#dates")).to_be_hidden()
        expect(page.locator("h2.page")).to_contain_text("Last ")
        series = get(priced, "/v1/series", hours=hours)
        shape = page.evaluate(
            "() => { const u = window.dashboard.charts['series-activity']; const x = u.data[0];"
            " return [x.length, u.data[1].reduce((a, b) => a + b, 0), x[x.length - 1]]; }"
        )
        rounds = sum(p["rounds"] for p in series["points"])
        last = datetime.fromisoformat(series["points"][-1]["hour"]).timestamp()
        assert shape == [int(hours), rounds, last]
        expect(_tile(page, "rounds")).to_have_attribute("data-value", str(rounds))
        assert rounds == (0 if hours == "1" else 3)  # two hours ago: in the last 6 and 24 hours
        # The hours' cost, summed exactly from the points' decimal strings; the unpriced round counted.
        assert sum(Decimal(p["cost_usd"]) for p in series["points"]) == (0 if hours == "1" else TOTAL_USD)
        assert set(page.evaluate("() => Object.keys(window.dashboard.charts)")) == {
            "series-activity",
            "series-tokens",
            "series-cost",
            "series-latency",
        }
        assert _latency_rows(page) == _expected_latency(get(priced, "/v1/latency", hours=hours))
        # What those hours cost and which sessions started in them, as /v1/cost and /v1/summary
        # have them: session s1 (two hours ago) in the last 6 and 24 hours, nothing in the last one.
        cost = get(priced, "/v1/cost", hours=hours)
        assert Decimal(cost["round_usd"]) == (0 if hours == "1" else TOTAL_USD)
        assert Decimal(cost["round_usd"]) == sum(Decimal(p["cost_usd"]) for p in series["points"])
        expect(_tile(page, "round_usd")).to_have_attribute("data-value", cost["round_usd"])
        expect(_tile(page, "unpriced_rounds")).to_have_attribute("data-value", str(cost["unpriced_rounds"]))
        per_hour = float(_tile(page, "per_hour").get_attribute("data-value"))
        assert per_hour == pytest.approx(float(cost["round_usd"]) / int(hours))
        summary = get(priced, "/v1/summary", hours=hours)
        assert summary["total_sessions"] == (0 if hours == "1" else 1)
        expect(_tile(page, "total_sessions")).to_have_attribute("data-value", str(summary["total_sessions"]))
        top = page.locator("table.top-sessions tbody tr").evaluate_all("rs => rs.map(r => r.dataset.session)")
        assert top == [s["session_id"] for s in cost["top_sessions"]] == ([] if hours == "1" else ["s1"])
        if hours == "6":
            watched.shot("overview-hours")
    # Back to whole days: the dates again, and the cost.
    page.select_option("select[name=range]", "")
    page.wait_for_url(lambda url: "hours=" not in url)
    watched.drawn(5)
    expect(page.locator("#dates")).to_be_visible()
    expect(_tile(page, "round_usd")).to_have_attribute("data-value", "3.2535")
    assert watched.problems == []


def test_the_session_page_shows_cost_ttft_and_forwards(priced: str, watched: Watched) -> None:
    page = watched.page
    page.goto(f"{priced}/sessions/s1")
    watched.drawn()
    detail = get(priced, "/v1/sessions/s1")
    s = detail["session"]
    assert (s["cost_usd"], s["unpriced_rounds"], s["user_id"]) == ("3.2535", 1, "u1")
    expect(_tile(page, "cost_usd")).to_have_attribute("data-value", "3.2535")
    expect(_tile(page, "unpriced_rounds")).to_have_attribute("data-value", "1")
    expect(page.locator("main")).to_contain_text("user u1")
    rows = page.locator("table.rounds tbody tr").evaluate_all(
        "rs => rs.map(r => [r.dataset.round, r.querySelector('td.usd').dataset.usd,"
        " r.querySelector('td.usd').textContent, r.querySelector('td.ms').dataset.ms,"
        " r.querySelector('td.parts').dataset.parts])"
    )

    def parts(r: dict[str, Any]) -> str:
        return ",".join(
            "" if r[k] is None else str(r[k])
            for k in ("cache_read_tokens", "cache_write_tokens", "reasoning_tokens")
        )

    expected = [
        [
            r["round_id"],
            r["cost_usd"] or "",
            "unpriced" if r["unpriced"] else ("$3.25" if r["cost_usd"] == "3.25" else "$0.0035"),
            "" if r["time_to_first_token_ms"] is None else str(r["time_to_first_token_ms"]),
            parts(r),
        ]
        for r in detail["rounds"]
    ]
    assert rows == expected
    assert {r[0]: r[1:3] for r in rows} == {
        "r1": ["3.25", "$3.25"],
        "r2": ["", "unpriced"],
        "r3": ["0.0035", "$0.0035"],
    }
    assert [r[3] for r in rows if r[0] == "r3"] == ["450"]
    assert [r[4] for r in rows if r[0] == "r1"] == ["200000,,"]
    # The session's forwards: f1, made for round r1.
    forwards = page.locator("table.session-forwards tbody tr").evaluate_all(
        "rs => rs.map(r => [r.dataset.forward, r.cells[3].textContent])"
    )
    assert forwards == [[f["forward_id"], f["round_id"]] for f in detail["forwards"]] == [["f1", "r1"]]
    watched.shot("session-cost")
    assert watched.problems == []
