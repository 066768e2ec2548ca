"""Failover drill: a master of a local Redis Cluster (one replica per master) is SIGKILLed while a
producer publishes at a steady rate and workers apply; its replica takes over, and the producer
and the workers carry on by themselves. Counts what was lost, with the producer's WAIT option
off and on (Redis replicates asynchronously: a write the old master acknowledged can vanish).

    python -m bench.cluster_drill [--events 20000] [--rate 2000] [--runs 3]

Uses DATABASE_URL; the cluster runs on ports of 7000-7099. Writes bench/results/cluster_drill.json.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
import redis

from bench.common import DATABASE_URL, fresh_schema, median, write_result
from contract.connect import connect, node_for, placed
from contract.keys import DEFAULT_GROUP, Keys
from producer import Publisher
from producer.settings import ProducerSettings
from worker.dev.cluster import start_cluster
from worker.dev.scratch import wait_drained


def failover_drill(
    folder: Path,
    *,
    wait_replicas: int,
    events: int = 20_000,
    rate: float = 2000.0,
    shards: int = 3,
    workers: int = 2,
    database_url: str = DATABASE_URL,
) -> dict[str, Any]:
    """Publish ``events`` session starts (one row each) at ``rate``; a third of the way in,
    SIGKILL the master of the first shard's slot. What was applied in the end, and lost."""
    cluster = start_cluster(folder / "cluster", masters=3, replicas=1)
    stream = f"drill:{uuid.uuid4().hex[:8]}:events"
    procs: list[subprocess.Popen[bytes]] = []
    logs = contextlib.ExitStack()
    try:
        with fresh_schema("failover", database_url) as url:
            env = dict(
                os.environ,
                DATABASE_URL=url,
                REDIS_URL=cluster.url,
                METRICS_STREAM=stream,
                METRICS_SHARDS=str(shards),
                METRICS_BLOCK_MS="500",
            )
            procs = [
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "worker.cli",
                        "run",
                        "--consumer",
                        f"w{i}",
                        "--claim-idle-ms",
                        "2000",
                    ],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=logs.enter_context((folder / f"worker-{i}.log").open("wb")),
                )
                for i in range(workers)
            ]
            client = connect(cluster.url)
            keys = placed(Keys(stream, shards), client)
            victim = int(node_for(client, keys.streams[0])[0].rsplit(":", 1)[1])
            _wait_for_consumers(client, keys, workers)  # a worker starting after the kill could not connect
            client.close()
            pub = Publisher(
                ProducerSettings(
                    redis_url=cluster.url,
                    stream=stream,
                    shards=shards,
                    spool_dir=folder / "spool",
                    wait_replicas=wait_replicas,
                    socket_timeout=1.0,
                    connect_timeout=0.5,
                    retry_initial=0.05,
                    retry_max=0.5,
                )
            )
            started = time.monotonic()
            recovered: list[float] = []
            watcher = threading.Thread(
                target=lambda: (cluster.wait_ok(60), recovered.append(time.monotonic()))
            )
            for i in range(events):
                delay = started + i / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                pub.session_started(f"s-{i}", "m")
                if i == events // 3:
                    cluster.kill(victim)
                    killed_at = time.monotonic()
                    watcher.start()  # until the replica is master and every node says ok
            watcher.join(60)
            # The killed node back, as the new master's replica (as a supervisor would restart
            # it): with WAIT, that master's batches wait in the spool until a replica has them.
            cluster.start_node(victim)
            cluster.wait_replicas_in_sync(60)
            delivered = pub.flush(120)  # until the spool is replayed too (close alone leaves it)
            stats = pub.stats()
            pub.close(10)
            promoted = recovered[0] - killed_at if recovered else float("nan")
            client = connect(f"redis://127.0.0.1:{cluster.alive_ports()[0]}/0")  # not the dead node
            try:
                wait_drained(client, Keys(stream, shards), DEFAULT_GROUP, timeout=180)
            finally:
                client.close()
            with psycopg.connect(url) as conn:
                row = conn.execute("SELECT count(*) FROM session_metrics").fetchone()
            applied = int(row[0]) if row else 0
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait(timeout=30)
        cluster.stop()
        logs.close()
    return {
        "wait_replicas": wait_replicas,
        "published": events,
        "applied": applied,
        "lost": events - applied,
        "delivered": delivered,
        "spooled": stats.get("spooled", 0),
        "send_failures": stats.get("send_failures", 0),
        "seconds_kill_to_ok": round(promoted, 1),
    }


def _wait_for_consumers(client: Any, keys: Keys, workers: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(redis.ResponseError):  # no stream or group yet
            if len(client.xinfo_consumers(keys.streams[0], DEFAULT_GROUP)) >= workers:
                return
        time.sleep(0.1)
    raise TimeoutError(f"{workers} workers did not start reading within {timeout:.0f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--rate", type=float, default=2000.0)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    results: dict[str, list[dict[str, Any]]] = {"off": [], "on": []}
    for _ in range(args.runs):
        for label, replicas in (("off", 0), ("on", 1)):
            with tempfile.TemporaryDirectory(prefix="failover-") as folder:
                run = failover_drill(Path(folder), wait_replicas=replicas, events=args.events, rate=args.rate)
            results[label].append(run)
            print(f"WAIT {label}: {run}", flush=True)
    for label, runs in results.items():
        print(
            f"WAIT {label}: lost {[r['lost'] for r in runs]} of {args.events} per run; "
            f"kill to cluster ok {median([r['seconds_kill_to_ok'] for r in runs]):.1f} s (median)"
        )
    print(f"written {write_result('cluster_drill', {'events': args.events, 'rate': args.rate, **results})}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
