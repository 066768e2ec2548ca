"""Maintenance with the data Redis on a cluster; the RQ scheduler on a plain Redis of its own."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from contract.connect import Client, placed
from contract.events import SessionStarted
from tests.maintenance.helpers import maintenance_settings, prune_settings
from worker.dev.cluster import LocalCluster
from worker.engine.apply import apply_events
from worker.maintenance.jobs import run_prune, run_reconcile
from worker.maintenance.scheduler import VARIABLE, scheduler_redis_url

NOW = datetime.now(UTC)


def test_reconcile_reads_hints_and_prune_trims_every_shards_dead_letters_on_a_cluster(
    db_url: str, cluster: LocalCluster, cluster_client: Client, key_prefix: str, conn: psycopg.Connection
) -> None:
    old = NOW - timedelta(hours=2)
    apply_events(
        conn,
        [
            SessionStarted(event_id=f"s-{sid}", occurred_at=old, session_id=sid, model="m")
            for sid in ("alive", "dead")
        ],
    )
    settings = maintenance_settings(db_url, cluster.url, key_prefix, shards=6)
    keys = placed(settings.keys, cluster_client)
    cluster_client.zadd(keys.active_sessions, {"alive": time.time() + 600})
    details = run_reconcile(settings)
    assert details["sessions_completed"] == 1
    status = dict(conn.execute("SELECT session_id, status FROM session_metrics").fetchall())
    assert status == {"alive": "running", "dead": "completed"}

    stale = f"{int((NOW - timedelta(days=40)).timestamp() * 1000)}-0"
    for stream in keys.streams:
        cluster_client.xadd(keys.dead_letters_for(stream), {"reason": "old"}, id=stale)
        cluster_client.xadd(keys.dead_letters_for(stream), {"reason": "new"})
    assert run_prune(prune_settings(db_url, cluster.url, key_prefix, shards=6))["dead_letters"] == 6
    assert all(cluster_client.xlen(keys.dead_letters_for(s)) == 1 for s in keys.streams)


def test_the_scheduler_needs_a_plain_redis_and_says_so_in_one_line(
    cluster: LocalCluster, redis_url: str
) -> None:
    assert scheduler_redis_url({"REDIS_URL": redis_url}) == redis_url
    assert scheduler_redis_url({"REDIS_URL": cluster.url, VARIABLE: redis_url}) == redis_url
    with pytest.raises(ValueError, match=f"REDIS_URL: .* is a Redis Cluster.*set {VARIABLE}"):
        scheduler_redis_url({"REDIS_URL": cluster.url})
    with pytest.raises(ValueError, match=f"{VARIABLE}: .* RQ does not support Redis Cluster"):
        scheduler_redis_url({"REDIS_URL": redis_url, VARIABLE: cluster.url})
    env = {k: v for k, v in os.environ.items() if k != VARIABLE}
    done = subprocess.run(
        [sys.executable, "-m", "worker.cli", "scheduler-url"],
        env={**env, "REDIS_URL": cluster.url},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "is a Redis Cluster" in done.stderr, done.stderr
    done = subprocess.run(
        [sys.executable, "-m", "worker.cli", "scheduler-url"],
        env={**env, "REDIS_URL": cluster.url, VARIABLE: redis_url},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (done.returncode, done.stdout) == (0, redis_url + "\n")
