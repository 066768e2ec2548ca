"""The dashboard in a real Chromium (Debian's, driven by Playwright for Python) over metrics-api run
as a console script, on a database the simulator filled through a worker.

Each page loads with no console error and no failed request; the overview's tiles are the API's
figures; the charts drew their series; a session opens with the rounds of /v1/sessions/{id}; a filter
change moves the URL and the figures; with tokens, the page asks for one and refuses a wrong one.
Screenshots land in METRICS_SCREENSHOT_DIR (default .artifacts/dashboard).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis

from contract.events import SyncMismatch
from tests.conftest import Services, with_search_path
from tests.ingest.helpers import drain, publish, settings
from tests.read.browser import CHROMIUM, Watched, get, week
from tests.read.conftest import fill, metrics_api
from tests.read.events import Events, usage
from worker.maintenance.reconcile import HintSnapshot, reconcile
from worker.schema import apply_schema
from worker.status import PipelineStatus, applied_per_second

pytestmark = pytest.mark.acceptance

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "dashboard-test-token-0123456789"

if not CHROMIUM.exists():
    if os.environ.get("CI"):
        pytest.fail(f"{CHROMIUM} is missing: .ci/run installs Debian's chromium", pytrace=False)
    pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)", allow_module_level=True)

from playwright.sync_api import Browser, expect, sync_playwright  # noqa: E402


@pytest.fixture(scope="module")
def filled(services: Services) -> Iterator[tuple[str, dict[str, str]]]:
    """A schema filled by ``metrics-producer simulate`` through a worker, one malformed entry
    dead-lettered; with the environment metrics-api needs to read it (and its streams)."""
    schema, prefix = f"d_{uuid.uuid4().hex[:12]}", f"test:{uuid.uuid4().hex[:12]}"
    with psycopg.connect(services.database_url, autocommit=True) as admin:
        admin.execute(f'CREATE SCHEMA "{schema}"')
    url = with_search_path(services.database_url, schema)
    s = settings(url, services.redis_url, prefix)
    env = dict(
        os.environ,
        DATABASE_URL=url,
        REDIS_URL=services.redis_url,
        METRICS_STREAM=s.stream,
        METRICS_GROUP=s.group,
        METRICS_SPOOL_DIR=str(ROOT / ".artifacts" / "spool" / prefix.replace(":", "_")),
    )
    env.pop("METRICS_API_TOKENS", None)
    env.pop("METRICS_API_TOKENS_FILE", None)
    client = redis.Redis.from_url(services.redis_url)
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            apply_schema(conn)
        simulate = [sys.executable, "-m", "producer.cli", "simulate", "--agents", "4", "--sessions", "15"]
        subprocess.run([*simulate, "--seed", "7", "--no-progress"], env=env, check=True, timeout=120)
        client.xadd(s.stream, {"event": b"not json"})
        drain(s)
        yield url, env
    finally:
        for key in client.scan_iter(f"{prefix}*", count=1000):
            client.delete(key)
        client.close()
        with psycopg.connect(services.database_url, autocommit=True) as admin:
            admin.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture(scope="module")
def api(filled: tuple[str, dict[str, str]]) -> Iterator[str]:
    with metrics_api(filled[1], "--log-level", "warning") as served:
        yield served.url


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def watched(browser: Browser) -> Iterator[Watched]:
    w = Watched(browser)
    yield w
    w.context.close()


def _dig(value: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        value = value[part]
    return value


def test_the_overview_shows_the_summary_and_draws_its_charts(
    api: str, watched: Watched, capsys: pytest.CaptureFixture[str]
) -> None:
    page = watched.page
    page.goto(f"{api}/")
    watched.drawn()
    summary = get(api, "/v1/summary", **week())
    daily = get(api, "/v1/daily", days=7, end_date=week()["end_date"])
    assert summary["total_sessions"] > 0
    tiles = page.locator(".tiles.activity .tile").evaluate_all(
        "ts => ts.map(t => [t.dataset.key, t.dataset.source, Number(t.dataset.value)])"
    )
    assert len(tiles) == 15
    for key, source, value in tiles:
        expected = sum(d["total_rounds"] for d in daily) if source == "daily" else _dig(summary, key)
        assert value == expected, key
    # The tile's text is the same number for people (1.2k), its title the exact one.
    first = page.locator('.tile[data-key="total_tool_calls"] .value')
    assert first.get_attribute("title") == f"{summary['total_tool_calls']:,}"
    # The charts: uPlot instances with every day of the range, and pixels on their canvases.
    for name, series in (("tokens", None), ("activity", 2)):
        shape = page.evaluate(
            f"""() => {{ const u = window.dashboard.charts[{name!r}];
                const c = u.root.querySelector('canvas'); const d = c.getContext('2d')
                    .getImageData(0, 0, c.width, c.height).data;
                let painted = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) painted++;
                return {{ series: u.series.length - 1, points: u.data[0].length,
                          total: u.data.slice(1).map(s => s.reduce((a, b) => a + b, 0)), painted }}; }}"""
        )
        assert shape["points"] == 7 and shape["painted"] > 1000, (name, shape)
        if series:
            assert shape["series"] == series
    tokens = page.evaluate("() => window.dashboard.charts.tokens.data[1].reduce((a, b) => a + b, 0)")
    assert tokens == summary["total_tokens"]["total_tokens"]  # the stack's top is every model's tokens
    tools = get(api, "/v1/tools", **week())
    assert page.locator("table.tools tbody tr").count() == len(tools) > 0
    timing = page.evaluate(
        "() => performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? null"
    )
    assert timing is not None
    with capsys.disabled():  # a figure for the report, shown on every run
        print(f"\n[dashboard] overview first contentful paint: {timing:.0f} ms", end=" ")
    watched.shot("overview")
    assert watched.problems == []


def test_a_session_opens_with_the_rounds_of_the_api(api: str, watched: Watched) -> None:
    page = watched.page
    page.goto(f"{api}/sessions")
    watched.drawn()
    listed = get(api, "/v1/sessions", limit=26, **week())
    rows = page.locator("table.sessions tbody tr")
    assert rows.count() == min(25, len(listed))
    assert rows.evaluate_all("rs => rs.map(r => r.dataset.session)") == [s["session_id"] for s in listed[:25]]
    watched.shot("sessions")
    chosen = listed[0]["session_id"]
    rows.first.locator("a").click()
    page.wait_for_url(f"**/sessions/{chosen}**")
    expect(page.locator("h2.page")).to_have_text(f"Session {chosen}")
    detail = get(api, f"/v1/sessions/{chosen}")
    shown = page.locator("table.rounds tbody tr").evaluate_all("rs => rs.map(r => r.dataset.round)")
    assert shown == [r["round_id"] for r in detail["rounds"]] and shown
    calls = sum(len(r["tool_calls"]) for r in detail["rounds"])
    assert page.locator("table.rounds ul.calls li").count() == calls
    watched.shot("session")
    page.go_back()
    expect(page.locator("table.sessions")).to_be_visible()
    assert watched.problems == []


def test_sessions_page_older_and_newer_through_every_session(api: str, watched: Watched) -> None:
    page = watched.page
    listed = [s["session_id"] for s in get(api, "/v1/sessions", limit=1000, **week())]
    assert len(listed) > 50  # three pages of 25
    page.goto(f"{api}/sessions")
    rows = page.locator("table.sessions tbody tr")
    ids = "rs => rs.map(r => r.dataset.session)"
    seen: list[list[str]] = []
    for n in range(1, 4):
        watched.drawn(n)
        seen.append(rows.evaluate_all(ids))
        if n < 3:
            page.click("button[data-action=older]")
            page.wait_for_url(f"**before={seen[-1][-1]}**")
    assert [i for p in seen for i in p] == listed
    expect(page.locator("button[data-action=older]")).to_have_count(0)  # the oldest page
    page.click("button[data-action=newer]")
    page.wait_for_url(f"**after={seen[2][0]}**")
    watched.drawn(4)
    assert rows.evaluate_all(ids) == seen[1]
    page.click("button[data-action=newer]")  # up to the latest: the URL has no cursor left
    page.wait_for_url(lambda url: "after=" not in url and "before=" not in url)
    watched.drawn(5)
    assert rows.evaluate_all(ids) == seen[0]
    expect(page.locator("button[data-action=newer]")).to_have_count(0)
    assert watched.problems == []


def test_a_filter_change_moves_the_url_and_the_figures(api: str, watched: Watched) -> None:
    page = watched.page
    page.goto(f"{api}/sessions")
    watched.drawn()
    models = get(api, "/v1/models", **week())
    model = models[-1]["model"]
    page.select_option("select[name=model]", model)
    page.wait_for_url(f"**model={model}**")
    expect(page.locator("table.sessions tbody tr")).to_have_count(min(25, models[-1]["sessions"]))
    assert set(page.locator("table.sessions tbody td:nth-child(2)").all_inner_texts()) == {model}
    # A date range without data: the URL says it, the overview's figures follow.
    page.goto(f"{api}/")
    watched.drawn()
    page.fill("input[name=start]", "2020-01-01")
    page.fill("input[name=end]", "2020-01-03")
    page.locator("input[name=end]").dispatch_event("change")
    page.wait_for_url("**start=2020-01-01&end=2020-01-03**")
    expect(page.locator('.tile[data-key="total_sessions"]')).to_have_attribute("data-value", "0")
    # The link reproduces the view.
    page.wait_for_load_state("networkidle")  # each change drew once more: let the last finish
    page.reload()
    expect(page.locator("h2.page")).to_have_text("Overview, 2020-01-01 to 2020-01-03 (UTC)")
    assert watched.problems == []


def test_forwards_and_pipeline_pages(api: str, watched: Watched) -> None:
    page = watched.page
    page.goto(f"{api}/forwards")
    watched.drawn()
    endpoints = get(api, "/v1/forward/endpoints", **week())
    assert page.locator("table.endpoints tbody tr").count() == len(endpoints) > 0
    assert page.evaluate("() => window.dashboard.charts.forwards.data[1].reduce((a, b) => a + b, 0)") == sum(
        e["requests"] for e in endpoints
    )
    watched.shot("forwards")
    page.click("nav a[data-page=pipeline]")
    watched.drawn(2)
    expect(page.locator("#dates")).to_be_hidden()  # the pipeline is now, whatever the dates
    health = get(api, "/v1/pipeline")
    assert health["dead_letters"] == 1 and health["streams"][0]["pending"] == 0
    expect(page.locator("table.dead-letters tbody tr")).to_have_count(1)
    expect(page.locator("table.dead-letters")).to_contain_text(health["latest_dead_letters"][0]["reason"])
    watched.shot("pipeline")
    assert watched.problems == []


def test_the_pipeline_page_shows_the_lag_and_the_applied_rate(
    api: str, filled: tuple[str, dict[str, str]], watched: Watched
) -> None:
    env = filled[1]
    s = settings(filled[0], env["REDIS_URL"], env["METRICS_STREAM"].removesuffix(":events"))
    page = watched.page

    def tile(key: str) -> Any:
        return page.locator(f'.tile[data-key="{key}"]')

    page.goto(f"{api}/pipeline")
    watched.drawn()  # two reads a second apart: the rate between them
    expect(tile("applied_per_second")).to_have_attribute("data-value", "0")  # nothing flows
    expect(tile("lag_seconds")).to_have_attribute("data-value", "0")  # nothing waits
    expect(page.locator("table.streams thead")).to_contain_text("oldest waiting")
    before = get(api, "/v1/pipeline")
    client = redis.Redis.from_url(s.redis_url)
    try:
        mismatches = [
            SyncMismatch(event_id=f"page-{i}", occurred_at=datetime(2026, 2, 10, tzinfo=UTC), reason="r")
            for i in range(5)
        ]
        publish(client, s.stream, mismatches)  # a date outside the other tests' week
    finally:
        client.close()
    page.wait_for_timeout(500)  # what is checked is an age: let the entries grow old
    page.reload()
    watched.drawn()
    expect(tile("undelivered")).to_have_attribute("data-value", "5")
    assert float(tile("lag_seconds").get_attribute("data-value")) >= 0.5
    expect(tile("lag_seconds").locator(".value")).not_to_have_text("0 ms")
    drain(s)
    after = get(api, "/v1/pipeline")
    rate = page.evaluate("([a, b]) => window.dashboard.appliedPerSecond(a, b)", [before, after])
    assert rate == pytest.approx(applied_per_second(PipelineStatus(**before), PipelineStatus(**after)))
    assert rate * (after["read_at"] - before["read_at"]) == pytest.approx(5)
    assert watched.problems == []


def test_the_refresh_pauses_and_resumes(api: str, watched: Watched) -> None:
    page = watched.page
    renders = "() => window.dashboard.renders"
    page.goto(f"{api}/pipeline?refresh=1")  # the menu offers 10 s and up; the URL may say 1
    watched.drawn(3)  # drawn, then refreshed twice by itself
    page.click("#pause")
    page.wait_for_url("**paused=1**")
    expect(page.locator("#status")).to_contain_text("refresh paused")
    expect(page.locator("#pause")).to_have_text("Resume")
    paused_at = page.evaluate(renders)
    page.wait_for_timeout(2500)  # what is checked is that nothing happens: wait out two periods
    assert page.evaluate(renders) == paused_at
    page.click("#pause")
    watched.drawn(paused_at + 2)
    assert "paused" not in page.url
    expect(page.locator("#status")).to_contain_text("refreshing every 1 s")
    assert watched.problems == []


def test_without_redis_the_pipeline_says_not_configured(
    filled: tuple[str, dict[str, str]], browser: Browser
) -> None:
    env = {k: v for k, v in filled[1].items() if k != "REDIS_URL"}
    with metrics_api(env, "--log-level", "warning") as served:
        url = served.url
        w = Watched(browser)
        try:
            w.page.goto(f"{url}/pipeline")
            w.drawn()
            expect(w.page.locator("#not-configured")).to_contain_text("Not configured")
            assert w.problems == []
        finally:
            w.context.close()


def test_with_tokens_the_page_asks_for_one_and_refuses_a_wrong_one(
    filled: tuple[str, dict[str, str]], browser: Browser
) -> None:
    with metrics_api({**filled[1], "METRICS_API_TOKENS": TOKEN}, "--log-level", "warning") as served:
        url = served.url
        w = Watched(browser)
        try:
            page = w.page
            page.goto(f"{url}/")
            dialog = page.locator("#token-dialog")
            expect(dialog).to_be_visible()
            assert page.evaluate("() => window.dashboard.renders") == 0
            page.keyboard.press("Escape")  # the prompt stays: without a token there is nothing to show
            expect(dialog).to_be_visible()
            page.fill("#token-form input[name=token]", "wrong-token-0123456789abcdef")
            page.click("#token-form button")
            expect(page.locator("#token-message")).to_have_text("That token was refused. Enter another one.")
            w.shot("token")
            page.fill("#token-form input[name=token]", TOKEN)
            page.click("#token-form button")
            w.drawn()
            expect(dialog).to_be_hidden()
            assert page.locator(".tiles.activity .tile").count() == 15
            # Kept for the tab: another page of the same tab does not ask again.
            page.click("nav a[data-page=sessions]")
            w.drawn(2)
            expect(dialog).to_be_hidden()
            # The one refused request is the wrong token's.
            assert [p for p in w.problems if "401" not in p] == []
            assert sum("401" in p for p in w.problems) >= 1
        finally:
            w.context.close()


def test_the_docs_load_without_the_internet(api: str, watched: Watched) -> None:
    for path, ready in (("/docs", ".swagger-ui .info"), ("/redoc", "redoc-wrapper, .api-content")):
        watched.page.goto(f"{api}{path}")
        watched.page.wait_for_selector(ready)
    # Everything comes from the API itself (blob: is a local worker). ReDoc's footer asks its
    # vendor's CDN for a logo whatever its options: the pages' policy has the browser refuse it
    # (Playwright reports it as a request that failed with "csp": it never left the machine).
    elsewhere = {r for r in watched.requested if not r.startswith((api, "blob:"))}
    assert elsewhere <= {"https://cdn.redoc.ly/redoc/logo-mini.svg"}
    assert all(f"failed: {r} csp" in watched.problems for r in elsewhere)
    assert [p for p in watched.problems if "cdn.redoc.ly" not in p] == []


NONE = "\u2013"  # the en dash the page shows for a figure it does not have
#: A two-column table (name, figure) as {name: figure}, the figure read from its exact title.
BY_NAME = (
    "rs => Object.fromEntries(rs.map(r => "
    "[r.cells[0].textContent, Number(r.cells[1].title.replace(/,/g, ''))]))"
)


def _shown(page: Any, selector: str) -> int:
    """The number a person reads in ``selector`` (exact below 10,000: ``2,134``)."""
    text = page.locator(selector).inner_text().strip()
    assert re.fullmatch(r"\d{1,3}(,\d{3})*", text), (selector, text)
    return int(text.replace(",", ""))


def test_the_forward_tiles_add_up_and_the_requests_show_codes_and_errors(api: str, watched: Watched) -> None:
    page = watched.page
    page.goto(f"{api}/forwards?requests=1000")
    watched.drawn()
    summary = get(api, "/v1/forward/summary", **week())
    total = _shown(page, '.tile[data-key="total_requests"] .value')
    outcomes = page.locator('.tile[data-source="forward-outcome"]')
    keys = outcomes.evaluate_all("ts => ts.map(t => t.dataset.key)")
    assert keys == ["successful_requests", "failed_requests", "timed_out_requests", "pending_requests"]
    parts = {key: _shown(page, f'.tile[data-key="{key}"] .value') for key in keys}
    assert total == summary["total_requests"] == sum(parts.values()) > 0
    assert parts == {key: summary[key] for key in keys}
    assert parts["timed_out_requests"] > 0  # the outcome the tiles once left out
    # The requests, latest first, each with its status code and its error as the API has them.
    listed = get(api, "/v1/forward/requests", limit=1000, **week())
    rows = page.locator("table.requests tbody tr")
    assert rows.evaluate_all("rs => rs.map(r => r.dataset.forward)") == [r["forward_id"] for r in listed]
    cells = rows.evaluate_all(
        "rs => rs.map(r => [r.dataset.status, r.querySelector('td.code').textContent,"
        " r.querySelector('td.error-text').textContent])"
    )
    expected = [[r["status"], str(r["status_code"] or NONE), r["error"] or ""] for r in listed]
    assert cells == expected
    assert {"success", "error", "timeout"} <= {status for status, _, _ in cells}
    assert any(status == "error" and code != NONE and error for status, code, error in cells)
    watched.shot("forwards-requests")
    assert watched.problems == []


def test_the_session_page_shows_what_the_cli_shows(api: str, watched: Watched) -> None:
    listed = get(api, "/v1/sessions", limit=1000, **week())
    chosen = max(listed, key=lambda s: (s["prompt_cached_tool_outputs"], s["total_rounds"]))
    assert chosen["prompt_cached_tool_outputs"] > 0
    page = watched.page
    page.goto(f"{api}/sessions/{chosen['session_id']}")
    watched.drawn()
    detail = get(api, f"/v1/sessions/{chosen['session_id']}")
    s = detail["session"]
    for key, value in (
        ("cached_tool_outputs", s["prompt_cached_tool_outputs"]),
        ("prompt_tokens", s["total_token_usage"]["prompt_tokens"]),
        ("completion_tokens", s["total_token_usage"]["completion_tokens"]),
        ("messages", s["message_count"]),
    ):
        assert page.locator(f'.tile[data-key="{key}"]').get_attribute("data-value") == str(value), key
    cached = page.locator("table.rounds tbody tr td[data-cached]").evaluate_all(
        "cs => cs.map(c => Number(c.dataset.cached))"
    )
    assert cached == [r["prompt_cached_tool_outputs"] for r in detail["rounds"]]
    calls = page.locator("table.rounds ul.calls li").evaluate_all("ls => ls.map(l => l.dataset.call)")
    assert calls == [t["tool_call_id"] for r in detail["rounds"] for t in r["tool_calls"]]
    by_tool = page.locator("table.by-tool tbody tr").evaluate_all(BY_NAME)
    assert by_tool == s["tool_breakdown"]
    expect(page.locator("#dates")).to_be_hidden()  # the dates filter no one session
    # The sync mismatches, by reason, on the overview (a mismatch belongs to no session).
    page.goto(f"{api}/")
    watched.drawn()
    expect(page.locator("#dates")).to_be_visible()
    reasons = get(api, "/v1/summary", **week())["sync_mismatch_breakdown"]
    assert reasons
    shown = page.locator("table.mismatches tbody tr").evaluate_all(BY_NAME)
    assert shown == reasons
    assert watched.problems == []


def test_numbers_stay_exact_below_ten_thousand(api: str, watched: Watched) -> None:
    """Every figure (tiles and table cells) reads exact with separators below 10,000 and
    abbreviated from there, the exact figure in its title."""
    session_id = get(api, "/v1/sessions", limit=1, **week())[0]["session_id"]
    figures: list[tuple[str, str]] = []
    for path in ("/", "/forwards", f"/sessions/{session_id}", "/sessions"):
        watched.page.goto(f"{api}{path}")
        watched.drawn()
        figures += watched.page.locator(".tile .value[title], td.num[title]").evaluate_all(
            "fs => fs.map(f => [f.title, f.textContent])"
        )
    values = [(int(title.replace(",", "")), text) for title, text in figures if title != NONE]
    assert any(1000 <= value < 10_000 for value, _ in values)  # a figure that once read "2.1k"
    assert any(value >= 10_000 for value, _ in values)
    for value, text in values:
        if value < 10_000:
            assert text == f"{value:,}"
        else:
            assert re.fullmatch(r"\d+(\.\d)?[kMBT]", text), (value, text)
    assert watched.problems == []


@pytest.fixture(scope="module")
def marked(services: Services) -> Iterator[str]:
    """metrics-api over sessions the reconcile job closed ('dead', 'waiting') beside one its own
    session.completed closed ('done'), with K=2 shards and two entries on the base stream that no
    worker reads. Its URL."""
    schema, prefix = f"d_{uuid.uuid4().hex[:12]}", f"test:{uuid.uuid4().hex[:12]}"
    with psycopg.connect(services.database_url, autocommit=True) as admin:
        admin.execute(f'CREATE SCHEMA "{schema}"')
    url = with_search_path(services.database_url, schema)
    stream = f"{prefix}:events"
    env = dict(os.environ, DATABASE_URL=url, REDIS_URL=services.redis_url, METRICS_STREAM=stream)
    env.update(METRICS_SHARDS="2")
    env.pop("METRICS_API_TOKENS", None)
    env.pop("METRICS_API_TOKENS_FILE", None)
    now = datetime.now(UTC)
    at = now - timedelta(hours=2)
    ev = Events()
    for sid in ("done", "dead", "waiting"):
        ev.session_started(sid, "gpt-4", at)
        ev.round_started(f"{sid}-r", sid, "gpt-4", at)
        ev.round_completed(f"{sid}-r", sid, at + timedelta(minutes=3), usage(2, 3))
    ev.session_completed("done", "completed", at + timedelta(minutes=4))
    client = redis.Redis.from_url(services.redis_url)
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            apply_schema(conn)
            fill(conn, ev.events)
            hints = HintSnapshot(awaiting=frozenset({"waiting"}))
            reconcile(conn, hints, now=now, grace=timedelta(minutes=10))
        for i in range(2):
            client.xadd(stream, {"event": f"unrouted {i}"})
        with metrics_api(env, "--log-level", "warning") as served:
            yield served.url
    finally:
        for key in client.scan_iter(f"{prefix}*", count=1000):
            client.delete(key)
        client.close()
        with psycopg.connect(services.database_url, autocommit=True) as admin:
            admin.execute(f'DROP SCHEMA "{schema}" CASCADE')


def test_reconciled_sessions_are_told_apart(marked: str, watched: Watched) -> None:
    page = watched.page
    page.goto(f"{marked}/sessions")
    watched.drawn()
    tagged = page.locator("table.sessions tbody tr").evaluate_all(
        "rs => Object.fromEntries(rs.map(r => "
        "[r.dataset.session, r.querySelector('.status.reconciled') !== null]))"
    )
    assert tagged == {"done": False, "dead": True, "waiting": True}
    expect(page.locator('tr[data-session="waiting"] .status.awaiting_response')).to_have_count(1)
    watched.shot("sessions-reconciled")
    page.goto(f"{marked}/sessions/dead")
    watched.drawn()
    expect(page.locator("#reconciled")).to_contain_text("Closed by reconcile at")
    expect(page.locator(".status.reconciled")).to_have_count(1)
    page.goto(f"{marked}/sessions/done")
    watched.drawn()
    expect(page.locator("#reconciled")).to_have_count(0)
    page.goto(f"{marked}/")
    watched.drawn()
    figures = page.locator(".tile").evaluate_all(
        "ts => Object.fromEntries(ts.map(t => [t.dataset.key, t.dataset.value]))"
    )
    shown = [figures[f"{key}_sessions"] for key in ("total", "completed", "awaiting_response", "reconciled")]
    assert shown == ["3", "1", "0", "2"]
    assert watched.problems == []


def test_the_pipeline_page_warns_of_entries_no_worker_reads(marked: str, watched: Watched) -> None:
    page = watched.page
    page.goto(f"{marked}/pipeline")
    watched.drawn()
    warning = page.locator("#unrouted")
    expect(warning).to_have_attribute("data-value", "2")
    expect(warning).to_contain_text("2 entries in test:")
    expect(warning).to_contain_text("metrics-worker run --shards 1 --burst")
    expect(page.locator("table.streams tbody tr")).to_have_count(2)
    watched.shot("pipeline-unrouted")
    assert watched.problems == []
