"""The dashboard's Alerts page in a real Chromium (Debian's, driven by Playwright) over metrics-api
run as a console script: the rules of its METRICS_ALERTS_FILE, each rule's state with since when
and the last value, the history and the notifications, as /v1/alerts serves them."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tests.alerts.helpers import rules_file, webhook_server
from tests.read.conftest import fill, metrics_api
from tests.read.events import Events, usage
from worker.alerts.cycle import evaluate

pytestmark = pytest.mark.acceptance

CHROMIUM = Path(os.environ.get("METRICS_CHROMIUM", "/usr/bin/chromium"))
ROOT = Path(__file__).resolve().parents[2]
SHOTS = Path(os.environ.get("METRICS_SCREENSHOT_DIR") or ROOT / ".artifacts" / "dashboard")

if not CHROMIUM.exists():
    if os.environ.get("CI"):
        pytest.fail(f"{CHROMIUM} is missing: .ci/run installs Debian's chromium", pytrace=False)
    pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)", allow_module_level=True)

from playwright.sync_api import sync_playwright  # noqa: E402

RULES = """
[receivers.hook]
url_env = "HOOK"
[receivers.down]
url_env = "DOWN"
attempts = 1
[[rules]]
name = "round errors"
watch = "round_error_share"
group_by = "model"
window = "15m"
threshold = 0.2
receivers = ["hook", "down"]
[[rules]]
name = "quiet <b>fleet</b>"
watch = "silence"
window = "15m"
model = "nobody"
for = "5m"
[[rules]]
name = "slow today"
watch = "round_latency_p95"
window = "1d"
model = "nobody"
threshold = 100
"""


@pytest.fixture
def served(conn: psycopg.Connection[Any], db_url: str, tmp_path: Path) -> Iterator[str]:
    now = datetime.now(UTC)
    ev = Events()
    for model, errors in (("gpt-4", 3), ("claude", 0)):
        ev.session_started(f"s-{model}", model, now - timedelta(minutes=2))
        for i in range(4):
            rid = f"{model}-{i}"
            ev.round_started(rid, f"s-{model}", model, now - timedelta(minutes=2))
            ev.round_completed(
                rid,
                f"s-{model}",
                now - timedelta(minutes=1),
                usage(1, 1),
                status="error" if i < errors else "success",
            )
    fill(conn, ev.events)
    path = tmp_path / "alerts.toml"
    path.write_text(RULES)
    with webhook_server() as hooks:
        hooks.answers["/down"] = 500
        evaluate(conn, rules_file(RULES, {"HOOK": hooks.url + "/h", "DOWN": hooks.url + "/down"}), None, now)
    env = dict(os.environ, DATABASE_URL=db_url, METRICS_ALERTS_FILE=str(path), REDIS_URL="")
    env.pop("METRICS_API_TOKENS", None)
    env.pop("METRICS_API_TOKENS_FILE", None)
    with metrics_api(env, "--log-level", "warning") as api:
        yield api.url


def test_the_alerts_page_shows_rules_state_history_and_notifications(served: str) -> None:
    expected = httpx.get(f"{served}/v1/alerts", timeout=10).json()
    problems: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None)
        page.on("pageerror", lambda exc: problems.append(str(exc)))
        page.on("response", lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400 else None)
        page.goto(f"{served}/")
        page.wait_for_function("() => window.dashboard && window.dashboard.renders >= 1")
        page.click('nav a[data-page="alerts"]')
        page.wait_for_function("() => window.dashboard.renders >= 2")
        assert page.url.endswith("/alerts?refresh=30") or "/alerts" in page.url
        assert page.locator("nav a.current").inner_text() == "Alerts"
        tiles = page.locator(".tile").evaluate_all(
            "ts => ts.map(t => [t.dataset.key, Number(t.dataset.value)])"
        )
        assert tiles == [["firing", 1], ["pending", 1], ["rules", 3]]
        rules = page.locator("table.alert-rules tbody tr")
        assert rules.count() == 3
        assert rules.nth(1).locator("td").first.inner_text() == "quiet <b>fleet</b>"  # text, never HTML
        assert page.locator(".not-available").count() == 0  # every kind is measured, days included
        states = page.locator("table.alert-states tbody tr").evaluate_all(
            "rs => rs.map(r => [r.dataset.rule, r.dataset.labels, r.dataset.phase, r.cells[4].textContent])"
        )
        assert states == [[s["rule"], s["labels"], s["phase"], f"{s['value']:g}"] for s in expected["states"]]
        assert ["round errors", "model=gpt-4", "firing", "0.75"] in states
        assert ["quiet <b>fleet</b>", "", "pending", "0"] in states
        since = page.locator('table.alert-states tr[data-phase="firing"] td').nth(3).inner_text()
        (fired,) = [s for s in expected["states"] if s["phase"] == "firing"]
        assert since == fired["since"].replace("T", " ")[:19] + " UTC"
        changes = page.locator("table.alert-history tbody tr").evaluate_all(
            "rs => rs.map(r => r.dataset.change)"
        )
        assert sorted(changes) == ["firing", "pending"]
        outcomes = page.locator("table.alert-notifications tbody tr").evaluate_all(
            "rs => rs.map(r => r.dataset.status)"
        )
        assert sorted(outcomes) == ["failed", "sent"]
        assert "/*** answered 500" in page.locator("table.alert-notifications").inner_text()
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / "alerts.png"), full_page=True)
        browser.close()
    assert problems == []
