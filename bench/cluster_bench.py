"""Workers on a Redis Cluster against one Redis, in the same run.

    python -m bench.cluster_bench [--events 50000] [--runs 3] [--baseline-tree PATH]

Starts a local 3-master cluster (worker/dev/cluster.py) on ports of 7000-7099 and measures, on it
and on the single Redis at REDIS_URL, alternating so both see the same machine:
- throughput and machine CPU per event of 1 worker on 1 stream and 4 workers on 4 shards;
- idle CPU of 4 workers on 16 empty shards;
- the cost of one empty XREADGROUP through redis-py's RedisCluster (which first asks the server
  for the command's keys, COMMAND GETKEYS) against the worker's own connection to the master;
- with --baseline-tree (a checkout of the code before the cluster work), one worker's share of
  the COPY ceiling with that tree's worker and with this one.
Writes bench/results/cluster.json.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from tqdm import tqdm

from bench.common import DATABASE_URL, REDIS_URL, fresh_schema, median, realistic_events, write_result
from bench.throughput import copy_ceiling, pipeline_rate
from contract.connect import Client, connect, node_for, placed
from contract.keys import Keys
from worker.dev.cluster import LocalCluster, start_cluster

CONFIGS = [(1, 1), (4, 4)]


def idle_cpu(redis_url: str, workers: int = 4, shards: int = 16, seconds: float = 10.0) -> float:
    """Milliseconds of CPU per second that each of ``workers`` idle workers spends on ``shards``
    empty streams (their own processes, after 6 s to start: four at once on a busy 2-core
    machine take seconds to import and connect)."""
    stream = f"bench:{uuid.uuid4().hex[:8]}:idle"
    with fresh_schema("idle") as url:
        env = dict(
            os.environ,
            DATABASE_URL=url,
            REDIS_URL=redis_url,
            METRICS_STREAM=stream,
            METRICS_SHARDS=str(shards),
            METRICS_GROUP="idle",
        )
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "worker.cli", "run", "--consumer", f"idle{i}"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for i in range(workers)
        ]
        try:
            time.sleep(6.0)
            before = sum(_cpu_seconds(p.pid) for p in procs)
            time.sleep(seconds)
            used = sum(_cpu_seconds(p.pid) for p in procs) - before
        finally:
            for p in procs:
                p.send_signal(signal.SIGTERM)
            for p in procs:
                p.wait(timeout=30)
    client = connect(redis_url)
    try:
        for key in placed(Keys(stream, shards), client).streams:
            client.delete(key)
    finally:
        client.close()
    return used / seconds / workers * 1000


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def getkeys_cost(cluster: Client, calls: int = 2000) -> dict[str, float]:
    """Median microseconds of an empty XREADGROUP: through RedisCluster, and on the master's own
    connection (what the worker does); and COMMAND GETKEYS calls the first one caused."""
    stream = f"bench:{uuid.uuid4().hex[:8]}:{{getkeys}}"
    cluster.xgroup_create(stream, "g", id="0", mkstream=True)
    _, node = node_for(cluster, stream)
    out: dict[str, float] = {}
    try:
        for name, client in (("cluster_client_us", cluster), ("node_client_us", node)):
            getkeys = _getkeys(cluster)
            times = []
            for _ in range(calls):
                started = time.perf_counter()
                client.xreadgroup("g", "c", {stream: ">"}, count=10)
                times.append((time.perf_counter() - started) * 1e6)
            out[name] = median(times)
            out[name.replace("_us", "_getkeys_per_call")] = (_getkeys(cluster) - getkeys) / calls
    finally:
        cluster.delete(stream)
    return out


def _getkeys(cluster: Client) -> int:
    total = 0
    for node in cluster.get_primaries():  # type: ignore[union-attr]
        stats: Any = cluster.get_redis_connection(node).info("commandstats")  # type: ignore[union-attr]
        total += int(stats.get("cmdstat_command|getkeys", {}).get("calls", 0))
    return total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--idle-seconds", type=float, default=10.0)
    parser.add_argument(
        "--baseline-tree", type=Path, help="a checkout of the code to compare one worker with"
    )
    args = parser.parse_args(argv)
    events = realistic_events(args.events)
    with tempfile.TemporaryDirectory(prefix="cluster-bench-") as folder:
        cluster = start_cluster(Path(folder))
        try:
            data = _measure(args, events, cluster)
        finally:
            cluster.stop()
    _report(data)
    print(f"\nwritten {write_result('cluster', data)}")
    return 0


def _measure(args: argparse.Namespace, events: list[Any], cluster: LocalCluster) -> dict[str, Any]:
    targets = {"one Redis": REDIS_URL, "cluster": cluster.url}
    steps = args.runs * (len(targets) * (len(CONFIGS) + 1) + (4 if args.baseline_tree else 0)) + 1
    bar = tqdm(total=steps, desc="cluster bench", unit="step", file=sys.stderr)
    rates: dict[str, list[dict[str, float]]] = {
        f"{t}, {w} worker(s) on {k} stream(s)": [] for t in targets for w, k in CONFIGS
    }
    idle: dict[str, list[float]] = {t: [] for t in targets}
    baseline: dict[str, list[float]] = {
        "ceiling": [],
        "before": [],
        "after": [],
        "before_4": [],
        "after_4": [],
    }
    for _ in range(args.runs):
        for target, url in targets.items():
            for w, k in CONFIGS:
                rates[f"{target}, {w} worker(s) on {k} stream(s)"].append(pipeline_rate(events, w, k, url))
                bar.update()
            idle[target].append(idle_cpu(url, seconds=args.idle_seconds))
            bar.update()
        if args.baseline_tree:
            baseline["ceiling"].append(copy_ceiling())
            bar.update()
            baseline["before"].append(
                pipeline_rate(events, 1, 1, code=str(args.baseline_tree))["events_per_s"]
            )
            bar.update()
            baseline["after"].append(pipeline_rate(events, 1, 1)["events_per_s"])
            bar.update()
            baseline["before_4"].append(
                pipeline_rate(events, 4, 4, code=str(args.baseline_tree))["events_per_s"]
            )
            baseline["after_4"].append(pipeline_rate(events, 4, 4)["events_per_s"])
            bar.update()
    client = connect(cluster.url)
    try:
        getkeys = getkeys_cost(client)
    finally:
        client.close()
    bar.update()
    bar.close()
    return {
        "events": args.events,
        "runs": args.runs,
        "cpus": os.cpu_count(),
        "database": DATABASE_URL.rsplit("@", 1)[-1],
        "pipelines": rates,
        "idle_cpu_ms_per_s_per_worker": idle,
        "getkeys": getkeys,
        "baseline": baseline if args.baseline_tree else None,
    }


def _report(data: dict[str, Any]) -> None:
    cpus = data["cpus"] or 1
    summary: dict[str, tuple[float, float]] = {}
    print(f"\n{data['events']:,} events of the simulator's mix, median of {data['runs']} runs\n")
    for name, runs in data["pipelines"].items():
        eps = median([r["events_per_s"] for r in runs])
        cpu_us = median([r["cpu_busy"] * cpus / r["events_per_s"] * 1e6 for r in runs])
        summary[name] = (eps, cpu_us)
        print(f"{name:<40} {eps:>9,.0f} events/s  {cpu_us:5.1f} us machine CPU per event")
    for w, k in CONFIGS:
        single, on_cluster = (
            summary[f"{t}, {w} worker(s) on {k} stream(s)"] for t in ("one Redis", "cluster")
        )
        print(f"cluster / one Redis, {w} worker(s) on {k} stream(s): {on_cluster[0] / single[0]:.2f}x")
    for target in ("one Redis", "cluster"):
        one, four = (summary[f"{target}, {w} worker(s) on {k} stream(s)"] for w, k in CONFIGS)
        print(
            f"{target}: CPU per event, 4 workers on 4 shards / 1 worker on 1 stream: {four[1] / one[1]:.2f}x"
        )
    for target, runs in data["idle_cpu_ms_per_s_per_worker"].items():
        print(f"{target}: idle, 4 workers on 16 empty shards: {median(runs):.1f} ms CPU per s per worker")
    g = data["getkeys"]
    print(
        f"empty XREADGROUP: RedisCluster {g['cluster_client_us']:.0f} us "
        f"({g['cluster_client_getkeys_per_call']:.1f} COMMAND GETKEYS per call), "
        f"the master's own connection {g['node_client_us']:.0f} us ({g['node_client_getkeys_per_call']:.1f})"
    )
    b = data["baseline"]
    if b:
        ceiling = median(b["ceiling"])
        before, after = median(b["before"]), median(b["after"])
        print(
            f"one worker, one Redis: before {before:,.0f} events/s ({before / ceiling:.2f} of the COPY "
            f"ceiling {ceiling:,.0f}), after {after:,.0f} ({after / ceiling:.2f}); after/before "
            f"{after / before:.2f}x"
        )
        before_4, after_4 = median(b["before_4"]), median(b["after_4"])
        print(
            f"4 workers on 4 shards, one Redis: before {before_4:,.0f} events/s, after {after_4:,.0f}; "
            f"after/before {after_4 / before_4:.2f}x"
        )


if __name__ == "__main__":
    sys.exit(main())
