"""What ``demo --serve`` prints for people to look with, without starting it: the dashboard
first, and with API tokens set, the token hint and a curl that sends the header (never the token)."""

from __future__ import annotations

import shlex

from worker.dev.serve import _how_to_look, token_hint

API = "http://127.0.0.1:8123"
OTLP = "http://127.0.0.1:4318"
ENV = {
    "DATABASE_URL": "postgresql://u:secret@db:5432/m",
    "REDIS_URL": "redis://r:6379/0",
    "METRICS_STREAM": "demo_1:events",
}
TOKEN = "demo-lines-token-0123456789abcdef"


def _urls(text: str) -> list[str]:
    return [line.split()[0] for line in (ln.strip() for ln in text.splitlines()) if line.startswith("http")]


def test_the_dashboard_is_the_first_url_and_an_open_api_needs_no_header() -> None:
    text = _how_to_look(ENV, API, OTLP, "demo_1", "s-1")
    assert _urls(text)[0] == f"{API}/"
    assert f"{OTLP}/healthz" in _urls(text) and f"OTEL_EXPORTER_OTLP_ENDPOINT={OTLP}" in text
    (curl,) = [line.strip() for line in text.splitlines() if line.strip().startswith("curl ")]
    assert shlex.split(curl) == ["curl", "-s", f"{API}/v1/summary"]
    assert token_hint(ENV) == "" and "secret" not in text


def test_with_a_token_the_lines_say_so_and_the_curl_sends_the_header() -> None:
    env = {**ENV, "METRICS_API_TOKENS": TOKEN}
    text = _how_to_look(env, API, OTLP, "demo_1", "s-1")
    (dashboard,) = [line for line in text.splitlines() if line.strip().startswith(f"{API}/ ")]
    assert "asks for a token" in dashboard
    (curl,) = [line.strip() for line in text.splitlines() if line.strip().startswith("curl ")]
    assert shlex.split(curl, posix=True)[1:4] == ["-s", "-H", "Authorization: Bearer $METRICS_API_TOKENS"]
    assert TOKEN not in text
    several = {**ENV, "METRICS_API_TOKENS": f"{TOKEN},{TOKEN}x"}
    assert "Bearer YOUR_TOKEN" in _how_to_look(several, API, OTLP, "demo_1", "s-1")
