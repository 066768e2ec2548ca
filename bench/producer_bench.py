"""Producer benchmark: caller-side cost of one publish call, and events/s one process sends.

Run: ``.venv/bin/python bench/producer_bench.py [--runs 3] [--calls 50000] [--events 200000]``
(REDIS_URL, default redis://127.0.0.1:6379/0). Two cases: Redis up, and Redis down (a closed
port; the events go to a spool in a temporary folder). The calls are a realistic mix from
producer.histories (all event types). Call cost is timed around each call (perf_counter_ns; its
own ~0.1 µs included), with the queue kept from filling between timed calls. Throughput is events
published until flush() confirms them in Redis (up), or until all are on the spool (down).
Prints medians of the runs and writes bench/results/producer.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import redis

from producer import ProducerSettings, Publisher
from producer.histories import EVENT_TYPE_OF, agent_calls
from worker.dev.embedded import free_port

TARGETS = {"p50_us": 10.0, "p99_us": 50.0, "events_per_s": 50_000.0}


def calls_for(events: int, seed: int) -> list[tuple[str, dict[str, Any]]]:
    """About ``events`` event calls (liveness hints left out), realistic mix."""
    out: list[tuple[str, dict[str, Any]]] = []
    rng = random.Random(seed)
    while len(out) < events:
        out.extend(c for c in agent_calls(rng, 200) if c[0] in EVENT_TYPE_OF)
    return out[:events]


def wait_until(condition: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.001)
    return False


def call_cost(settings: ProducerSettings, calls: list[tuple[str, dict[str, Any]]]) -> dict[str, float]:
    pub = Publisher(settings)
    bound = [(getattr(pub, method), kwargs) for method, kwargs in calls]
    samples = []
    clock = time.perf_counter_ns
    for index, (method, kwargs) in enumerate(bound):
        start = clock()
        method(**kwargs)
        samples.append(clock() - start)
        if index % 500 == 499:  # untimed: keep the queue below half (past it, the sender spools)
            while pub.queued > 2_000:
                time.sleep(0.0002)
    pub.close(30)
    samples.sort()
    stats = pub.stats()
    assert not any(v for k, v in stats.items() if k.startswith("dropped_")), stats
    return {
        "p50_us": samples[len(samples) // 2] / 1000,
        "p99_us": samples[int(len(samples) * 0.99)] / 1000,
        "max_us": samples[-1] / 1000,
    }


def throughput(settings: ProducerSettings, calls: list[tuple[str, dict[str, Any]]], up: bool) -> float:
    pub = Publisher(settings)
    bound = [(getattr(pub, method), kwargs) for method, kwargs in calls]
    high = settings.queue_size // 2
    start = time.perf_counter()
    for index, (method, kwargs) in enumerate(bound):
        method(**kwargs)
        if index % 256 == 255:
            while pub.queued > high:  # never overflow: measure the sender, not the drop path
                time.sleep(0.0002)
    if up:
        assert pub.flush(120), pub.stats()
    else:
        assert wait_until(lambda: pub.stats()["spooled"] >= len(calls), 120), pub.stats()
    elapsed = time.perf_counter() - start
    stats = pub.stats()
    pub.close(5)
    done = stats["sent"] if up else stats["spooled"]
    assert done == len(calls), stats
    return len(calls) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--calls", type=int, default=50_000, help="timed calls per run")
    parser.add_argument("--events", type=int, default=200_000, help="events per throughput run")
    args = parser.parse_args()
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    client = redis.Redis.from_url(redis_url)
    results: dict[str, Any] = {}
    for case in ("redis up", "redis down"):
        up = case == "redis up"
        costs, rates = [], []
        for run in range(args.runs):
            with tempfile.TemporaryDirectory(prefix="producer-bench-") as spool:
                stream = f"bench:{uuid.uuid4().hex[:10]}:events"
                url = redis_url if up else f"redis://127.0.0.1:{free_port()}/0"
                settings = ProducerSettings(
                    redis_url=url, stream=stream, spool_dir=Path(spool), spool_max_bytes=1 << 30
                )
                costs.append(call_cost(settings, calls_for(args.calls, seed=run)))
                rates.append(throughput(settings, calls_for(args.events, seed=100 + run), up))
                if up:
                    for key in client.scan_iter(f"{stream}*"):
                        client.delete(key)
        results[case] = {
            "p50_us": statistics.median(c["p50_us"] for c in costs),
            "p99_us": statistics.median(c["p99_us"] for c in costs),
            "max_us": statistics.median(c["max_us"] for c in costs),
            "events_per_s": statistics.median(rates),
            "runs": {"call_cost": costs, "events_per_s": rates},
        }
    print(
        f"{'case':<12} {'p50 µs':>8} {'p99 µs':>8} {'max µs':>9} {'events/s':>10}   (median of {args.runs})"
    )
    for case, row in results.items():
        print(
            f"{case:<12} {row['p50_us']:>8.2f} {row['p99_us']:>8.2f} {row['max_us']:>9.0f} "
            f"{row['events_per_s']:>10,.0f}"
        )
    print(
        f"targets      {TARGETS['p50_us']:>8.0f} {TARGETS['p99_us']:>8.0f} {'':>9} "
        f"{TARGETS['events_per_s']:>10,.0f}   (events/s: with Redis up)"
    )
    out = Path(__file__).parent / "results" / "producer.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
                "settings": {"calls": args.calls, "events": args.events, "runs": args.runs},
                "targets": TARGETS,
                "results": results,
            },
            indent=2,
        )
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
