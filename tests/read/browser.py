"""The browser tests' shared parts: Debian's Chromium, a watched page, the API read beside it."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import Browser, ConsoleMessage

CHROMIUM = Path(os.environ.get("METRICS_CHROMIUM", "/usr/bin/chromium"))
ROOT = Path(__file__).resolve().parents[2]
SHOTS = Path(os.environ.get("METRICS_SCREENSHOT_DIR") or ROOT / ".artifacts" / "dashboard")


class Watched:
    """A page whose console errors and failed requests are collected."""

    def __init__(self, browser: Browser) -> None:
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})
        self.page = self.context.new_page()
        self.problems: list[str] = []
        self.requested: list[str] = []
        self.page.on("request", lambda r: self.requested.append(r.url))
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda exc: self.problems.append(f"page error: {exc}"))
        self.page.on("requestfailed", lambda r: self.problems.append(f"failed: {r.url} {r.failure}"))
        self.page.on("response", self._response)

    def _console(self, message: ConsoleMessage) -> None:
        if message.type in ("error", "warning"):
            self.problems.append(f"console {message.type}: {message.text}")

    def _response(self, response: Any) -> None:
        if response.status >= 400:
            self.problems.append(f"HTTP {response.status}: {response.url}")

    def drawn(self, renders: int = 1) -> None:
        """Wait until the page finished ``renders`` renders (window.dashboard counts them)."""
        self.page.wait_for_function(f"() => window.dashboard && window.dashboard.renders >= {renders}")

    def shot(self, name: str) -> None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def week() -> dict[str, str]:
    end = datetime.now(UTC).date()
    return {"start_date": (end - timedelta(days=6)).isoformat(), "end_date": end.isoformat()}


def get(api: str, path: str, **params: Any) -> Any:
    response = httpx.get(f"{api}{path}", params=params, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()
