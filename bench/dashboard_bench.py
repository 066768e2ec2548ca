"""The dashboard's overview data for 7 days, over the read benchmark's data, through metrics-api.

Run: ``.venv/bin/python -m bench.dashboard_bench [--runs 30] [--port 8150]`` (DATABASE_URL, default
the worker settings' default). Uses (and fills once, like bench/read_bench.py, whose fill it
reuses) schema ``bench_dashboard``: 110k sessions, 1.1M rounds, 1.65M tool calls, 500k forwards
over 90 UTC days. Starts ``metrics-api`` as a subprocess and times, in one process and interleaved:
GET /healthz (the HTTP floor), GET /v1/overview for the last 7 days of the data (what the page asks
for), the same three reads called one after another through the library (what a single
connection would cost), and each of them alone. Prints p50 / p90 / min in ms; results in
bench/results/dashboard.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg

from bench.read_bench import END, connect, fill, filled_sizes
from worker.dev.scratch import with_search_path
from worker.read import queries
from worker.settings import DEFAULT_DATABASE_URL

RESULTS = Path(__file__).resolve().parent / "results" / "dashboard.json"
TARGET_MS = 50.0
START = END - timedelta(days=6)


def _serve(url: str, port: int) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("METRICS_API_TOKENS")}
    server = subprocess.Popen(
        [sys.executable, "-m", "worker.read.server", "--port", str(port), "--log-level", "warning"],
        env={**env, "DATABASE_URL": url},
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return server
        except httpx.TransportError:
            time.sleep(0.1)
    server.terminate()
    raise SystemExit(f"metrics-api did not answer on port {port} within 30 s")


def _ms(call: Callable[[], Any]) -> float:
    began = time.perf_counter()
    call()
    return (time.perf_counter() - began) * 1000


def _stats(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50": round(statistics.median(ordered), 2),
        "p90": round(ordered[int(0.9 * (len(ordered) - 1))], 2),
        "min": round(ordered[0], 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", metavar="URL", help="PostgreSQL URL (env DATABASE_URL)")
    parser.add_argument("--schema", default="bench_dashboard", help="schema to fill and read")
    parser.add_argument("--runs", type=int, default=30, help="timed calls of each (after a warm-up)")
    parser.add_argument("--port", type=int, default=8150, help="metrics-api's port (default 8150)")
    args = parser.parse_args()
    base = args.database_url or os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL

    with connect(base, args.schema) as conn:
        sizes = filled_sizes(conn)
    if sizes is None:
        print(f"filling schema {args.schema} (once) ...", flush=True)
        sizes = fill(base, args.schema, 110_000, 500_000)
        with connect(base, args.schema) as conn:
            conn.execute("VACUUM ANALYZE")
    print("rows: " + ", ".join(f"{k} {v:,}" for k, v in sizes.items() if not k.startswith("requested")))

    url = with_search_path(base, args.schema)
    dates = {"start_date": START, "end_date": END}
    params = {k: v.isoformat() for k, v in dates.items()}
    server = _serve(url, args.port)
    api = httpx.Client(base_url=f"http://127.0.0.1:{args.port}", timeout=30)
    conn = psycopg.connect(url, autocommit=True)
    try:
        overview = api.get("/v1/overview", params=params)
        overview.raise_for_status()
        shown = overview.json()["summary"]["total_sessions"]

        def sequential() -> None:
            queries.summary(conn, **dates)
            queries.daily_metrics(conn, days=7, end_date=END)
            queries.tool_metrics(conn, **dates)

        timed: dict[str, Callable[[], Any]] = {
            "healthz": lambda: api.get("/healthz").raise_for_status(),
            "overview_http": lambda: api.get("/v1/overview", params=params).raise_for_status(),
            "three_reads_in_sequence": sequential,
            "summary": lambda: queries.summary(conn, **dates),
            "daily_metrics": lambda: queries.daily_metrics(conn, days=7, end_date=END),
            "tool_metrics": lambda: queries.tool_metrics(conn, **dates),
        }
        samples: dict[str, list[float]] = {name: [] for name in timed}
        for call in timed.values():  # warm-up
            call()
        for _ in range(args.runs):  # interleaved, so noise from other work hits all alike
            for name, call in timed.items():
                samples[name].append(_ms(call))
    finally:
        conn.close()
        api.close()
        server.terminate()
        server.wait(timeout=10)

    stats = {name: _stats(s) for name, s in samples.items()}
    p50 = stats["overview_http"]["p50"]
    print(f"\n/v1/overview for {START} to {END} ({shown:,} sessions), {args.runs} runs, ms:")
    for name, s in stats.items():
        print(f"  {name:26} p50 {s['p50']:7.1f}  p90 {s['p90']:7.1f}  min {s['min']:7.1f}")
    verdict = "met" if p50 <= TARGET_MS else "NOT met"
    print(f"\ntarget p50 <= {TARGET_MS:.0f} ms: {verdict} ({p50:.1f} ms; "
          f"{p50 - stats['healthz']['p50']:.1f} ms above /healthz)")  # fmt: skip
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "when": datetime.now(UTC).isoformat(timespec="seconds"),
                "rows": sizes,
                "ms": stats,
                "runs": args.runs,
                "cpus": os.cpu_count(),
            },
            indent=2,
        )
    )
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
