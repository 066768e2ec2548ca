"""Latency under a steady load: occurred_at-to-committed per event, and the lag over time.

    python -m bench.latency [--rates 2000 10000] [--duration 60] [--workers 2]

The simulator (``metrics-producer simulate``, its own processes) publishes at a fixed rate;
workers in this process record, for each committed batch, now - occurred_at of every event.
Prints p50/p90/p99/max per rate, writes bench/results/latency.json and, with matplotlib
installed (``pip install '.[bench]'``), bench/results/latency.png with the backlog over time.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import redis

from bench.common import REDIS_URL, RESULTS, fresh_schema, write_result
from contract.events import Event
from contract.keys import Keys
from worker.ingest.consumer import Worker, tune_gc_for_batches
from worker.ingest.stream import StreamClient
from worker.settings import WorkerSettings


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def measure(rate: int, duration: float, workers: int) -> dict[str, Any]:
    stream = f"bench:{uuid.uuid4().hex[:8]}:events"
    latencies: list[float] = []
    lock = threading.Lock()

    def on_commit(events: list[Event]) -> None:
        now = datetime.now(UTC)
        ages = [(now - ev.occurred_at).total_seconds() for ev in events]
        with lock:
            latencies.extend(ages)

    with fresh_schema("latency") as url:
        settings = WorkerSettings(
            database_url=url, redis_url=REDIS_URL, stream=stream, group="bench", block_ms=50
        )
        pool = [
            Worker(settings.with_(consumer=f"lat-{i}"), handle_signals=False, on_commit=on_commit)
            for i in range(workers)
        ]
        threads = [threading.Thread(target=w.run) for w in pool]
        for t in threads:
            t.start()
        client = redis.Redis.from_url(REDIS_URL)
        backlog = StreamClient(client, Keys(stream), "bench", "observer").backlog
        env = dict(os.environ, REDIS_URL=REDIS_URL, METRICS_STREAM=stream)
        agents = max(2, rate // 1000)
        sim = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "producer.cli",
                "simulate",
                "--agents",
                str(agents),
                "--sessions",
                "1000000",
                "--rate",
                str(rate),
                "--duration",
                str(duration),
                "--processes",
                "--no-progress",
                "--sent-times",  # the latency measured is from occurred_at
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        started = time.monotonic()
        samples: list[tuple[float, int, int]] = []
        while sim.poll() is None or backlog() != (0, 0):
            try:
                undelivered, pending = backlog()
            except redis.RedisError:
                undelivered = pending = -1
            samples.append((round(time.monotonic() - started, 2), undelivered, pending))
            time.sleep(0.5)
            if time.monotonic() - started > duration + 120:
                break
        for w in pool:
            w.stop()
        for t in threads:
            t.join(30)
        client.delete(stream)
        client.close()
    values = sorted(latencies)
    elapsed = samples[-1][0] if samples else duration
    return {
        "rate": rate,
        "events": len(values),
        "achieved_rate": round(len(values) / max(duration, 1e-9)),
        "p50_ms": round(percentile(values, 0.50) * 1000, 1),
        "p90_ms": round(percentile(values, 0.90) * 1000, 1),
        "p99_ms": round(percentile(values, 0.99) * 1000, 1),
        "max_ms": round(values[-1] * 1000, 1) if values else None,
        "seconds": elapsed,
        "backlog": samples,
    }


def chart(results: list[dict[str, Any]]) -> str | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, ax = plt.subplots(figsize=(8, 4))
    for r in results:
        xs = [s[0] for s in r["backlog"]]
        ax.plot(
            xs,
            [max(0, s[1]) + max(0, s[2]) for s in r["backlog"]],
            label=f"{r['rate']:,}/s: p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms",
        )
    ax.set_xlabel("seconds since the load started")
    ax.set_ylabel("entries not yet applied (undelivered + pending)")
    ax.set_title("Consumer lag under a steady publish rate")
    ax.legend()
    ax.grid(alpha=0.3)
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "latency.png"
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return str(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rates", type=int, nargs="+", default=[2000, 10000])
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    tune_gc_for_batches()  # as metrics-worker run does
    results = []
    for rate in args.rates:
        print(f"latency at {rate:,} events/s for {args.duration:.0f} s ...", file=sys.stderr, flush=True)
        results.append(measure(rate, args.duration, args.workers))
    print(
        f"\n{'target rate':>12} {'applied':>9} {'achieved/s':>11} {'p50 ms':>8} {'p90 ms':>8} "
        f"{'p99 ms':>8} {'max ms':>8}"
    )
    for r in results:
        print(
            f"{r['rate']:>12,} {r['events']:>9,} {r['achieved_rate']:>11,} {r['p50_ms']:>8} {r['p90_ms']:>8} "
            f"{r['p99_ms']:>8} {r['max_ms']:>8}"
        )
    png = chart(results)
    print(
        f"written {write_result('latency', {'workers': args.workers, 'results': results})}"
        + (f" and {png}" if png else " (no chart: pip install '.[bench]' for matplotlib)")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
