"""Every dashboard screenshot of the README (docs/screenshots/), taken in Debian's Chromium.

Run: ``.venv/bin/python -m bench.screenshots [--sessions 11000] [--out docs/screenshots]``
(DATABASE_URL and REDIS_URL, default the worker settings' defaults; METRICS_CHROMIUM, default
/usr/bin/chromium: Playwright drives that binary, never a browser of its own download).

What it shows: schema ``bench_screens`` filled by the read benchmark's fill (bench/read_bench.py:
sessions, rounds with cost and time to first token, tool calls, forwards, over the 90 UTC days up
to now) and, on top, ``metrics-producer simulate`` (4 agents, 15 sessions each, the last hour)
applied by ``metrics-worker run --burst`` through streams of a key prefix of its own, one malformed
entry among them (the pipeline page's dead letter). metrics-api serves it twice: open, and with
an API token (for the token prompt). The fill is redone on each run; the schema and the streams
are removed at the end unless --keep.

Pages: overview (the whole page) and its first screen (overview-cost), the last 6 hours
(overview-hours), sessions of one model, a benchmark session of 19 rounds (session), a simulated
session with its forwards (session-cost), forwards, pipeline health, the token prompt after a wrong
token. Each is taken once its render finished, with the refresh paused.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import redis
from playwright.sync_api import Page, sync_playwright

from bench.read_bench import connect, fill
from contract.keys import Keys
from worker.dev.scratch import with_search_path
from worker.settings import DEFAULT_DATABASE_URL

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path(os.environ.get("METRICS_CHROMIUM", "/usr/bin/chromium"))
TOKEN = "screenshot-token-0123456789abcdef"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
#: A benchmark session of 19 rounds from the last week; the simulated session with most forwards.
BENCH_SESSION = """
SELECT session_id FROM session_metrics
WHERE total_rounds = 19 AND started_at > now() - interval '6 days' ORDER BY session_id LIMIT 1
"""
SIMULATED_SESSION = """
SELECT session_id FROM forward_request_metrics WHERE session_id IS NOT NULL
GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1
"""


@contextmanager
def serve(env: dict[str, str], port: int) -> Iterator[str]:
    """metrics-api in ``env`` on ``port`` until the block ends; its base URL."""
    server = subprocess.Popen(
        [sys.executable, "-m", "worker.read.server", "--port", str(port), "--log-level", "warning"], env=env
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"metrics-api did not answer on port {port}")
            time.sleep(0.1)
        yield base
    finally:
        server.terminate()
        server.wait(timeout=10)


def simulate(env: dict[str, str], stream: str) -> None:
    """The simulator's last hour through the streams of ``stream``, a malformed entry among them,
    applied by one burst worker (which dead-letters the malformed one)."""
    run = {"env": env, "check": True, "timeout": 600}
    subprocess.run([sys.executable, "-m", "producer.cli", "simulate", "--agents", "4", "--sessions", "15",
                    "--seed", "7", "--no-progress"], **run)  # type: ignore[call-overload]  # fmt: skip
    client = redis.Redis.from_url(env["REDIS_URL"])
    try:
        client.xadd(Keys(stream).streams[0], {"event": b"not json"})  # one stream: METRICS_SHARDS=1
    finally:
        client.close()
    subprocess.run([sys.executable, "-m", "worker.cli", "run", "--burst"], **run)  # type: ignore[call-overload]


def drawn(page: Page, url: str) -> None:
    """Open ``url`` with the refresh paused and wait until its render finished."""
    page.goto(url + ("&" if "?" in url else "?") + "paused=1")
    page.wait_for_function("() => window.dashboard && window.dashboard.renders >= 1")
    page.wait_for_timeout(300)  # the charts' last paint


def take(base: str, tokened: str, out: Path, bench_session: str, sim_session: str) -> list[str]:
    today = datetime.now(UTC).date()
    week = f"start={(today - timedelta(days=6)).isoformat()}&end={today.isoformat()}"
    taken = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            page = context.new_page()
            shots: list[tuple[str, str, bool]] = [
                ("overview", f"/?{week}", True),
                ("overview-cost", f"/?{week}", False),
                ("overview-hours", "/?hours=6", True),
                ("sessions", f"/sessions?{week}&model=gpt-4", True),
                ("session", f"/sessions/{bench_session}?{week}", True),
                ("session-cost", f"/sessions/{sim_session}?{week}", True),
                ("forwards", f"/forwards?{week}", True),
                ("pipeline", "/pipeline", True),
            ]
            for name, path, full in shots:
                drawn(page, base + path)
                problem = page.evaluate("() => window.dashboard.lastError")
                if problem:
                    raise SystemExit(f"{name}: the page says {problem}")
                page.screenshot(path=str(out / f"{name}.png"), full_page=full)
                taken.append(name)
            context.close()
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            page = context.new_page()
            page.goto(f"{tokened}/?{week}&paused=1")
            page.fill("#token-form input[name=token]", "wrong-token-0123456789abcdef")
            page.click("#token-form button")
            refused = "That token was refused"
            page.wait_for_function(
                f"() => document.getElementById('token-message').textContent.startsWith('{refused}')"
            )
            page.screenshot(path=str(out / "token.png"))
            taken.append("token")
            context.close()
        finally:
            browser.close()
    return taken


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--sessions", type=int, default=11_000, help="benchmark sessions (default %(default)s)"
    )
    parser.add_argument(
        "--forwards", type=int, default=50_000, help="benchmark forwards (default %(default)s)"
    )
    parser.add_argument("--schema", default="bench_screens", help="schema to fill and show")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots", help="where the PNGs go")
    parser.add_argument("--port", type=int, default=8160, help="metrics-api's port; the next one too")
    parser.add_argument("--keep", action="store_true", help="keep the schema and the streams")
    args = parser.parse_args()
    if not CHROMIUM.exists():
        raise SystemExit(f"{CHROMIUM} is missing: apt-get install chromium (or set METRICS_CHROMIUM)")
    database = os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL
    redis_url = os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL
    prefix = f"screens:{uuid.uuid4().hex[:8]}"
    url = with_search_path(database, args.schema)
    env = {k: v for k, v in os.environ.items() if not k.startswith("METRICS_")}
    env.update(DATABASE_URL=url, REDIS_URL=redis_url, METRICS_STREAM=f"{prefix}:events",
               METRICS_GROUP="metrics-workers", METRICS_SHARDS="1",
               METRICS_SPOOL_DIR=str(ROOT / ".artifacts" / "spool" / prefix.replace(":", "_")))  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    try:
        print(f"filling schema {args.schema} up to now ...", flush=True)
        fill(database, args.schema, args.sessions, args.forwards, until=datetime.now(UTC))
        simulate(env, f"{prefix}:events")
        with connect(database, args.schema) as conn:
            conn.execute("VACUUM ANALYZE")
            bench_session = one(conn, BENCH_SESSION)
            sim_session = one(conn, SIMULATED_SESSION)
        with (
            serve(env, args.port) as base,
            serve({**env, "METRICS_API_TOKENS": TOKEN}, args.port + 1) as tokened,
        ):
            taken = take(base, tokened, args.out, bench_session, sim_session)
    finally:
        if not args.keep:
            with psycopg.connect(database, autocommit=True) as admin:
                admin.execute(f'DROP SCHEMA IF EXISTS "{args.schema}" CASCADE')
            client = redis.Redis.from_url(redis_url)
            for key in client.scan_iter(f"{prefix}*", count=1000):
                client.delete(key)
            client.close()
    print(f"wrote {', '.join(f'{n}.png' for n in taken)} to {args.out}")
    return 0


def one(conn: psycopg.Connection[Any], statement: str) -> str:
    row = conn.execute(statement).fetchone()
    if row is None:
        raise SystemExit(f"nothing to show: {statement}")
    return str(row[0])


if __name__ == "__main__":
    sys.exit(main())
