"""The Node.js producer of examples/node, run as a user would run it, against one Redis with three
shards: it passes the conformance file, its sessions, rounds and tool calls land exactly, its
heartbeat keeps an idle session running through reconcile, and a session without one is closed.
The same against a Redis Cluster: tests/cluster/test_node_producer_cluster.py."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import psycopg
import pytest
import redis

from contract.keys import Keys
from tests.examples.node import CONFORMANCE, README, installed, land_then_reconcile, node
from tests.ingest.helpers import settings

pytestmark = pytest.mark.acceptance


def test_the_node_producer_passes_the_conformance_file_and_fails_a_wrong_one(tmp_path: Path) -> None:
    done = node("--check-conformance", str(CONFORMANCE))
    assert done.returncode == 0, done.stderr
    assert "conformance: every check passed" in done.stdout
    doc = json.loads(CONFORMANCE.read_text())
    doc["routing"][0]["shard"][2] += 1  # one id on another shard for K = 3
    doc["cluster_tags"]["3"][1] = "1"
    wrong = tmp_path / "conformance.json"
    wrong.write_text(json.dumps(doc))
    done = node("--check-conformance", str(wrong))
    assert done.returncode == 1
    assert "conformance: 2 failed" in done.stdout
    assert "K=3" in done.stderr and "tags K=3" in done.stderr


def test_node_sessions_land_on_three_shards_and_live_as_long_as_they_beat(
    conn: psycopg.Connection, db_url: str, redis_url: str, key_prefix: str, redis_client: redis.Redis
) -> None:
    land_then_reconcile(conn, redis_client, settings(db_url, redis_url, key_prefix, shards=3))


def test_the_readme_node_commands_run_as_shown(
    redis_url: str, key_prefix: str, redis_client: redis.Redis
) -> None:
    block = README.read_text().split("<!-- readme-node -->", 1)[1].split("```sh\n", 1)[1].split("\n```", 1)[0]
    env = {**os.environ, "REDIS_URL": redis_url, "METRICS_STREAM": f"{key_prefix}:events"}
    installed()
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", block],
        cwd=README.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "conformance: every check passed" in done.stdout
    published = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(published["sessions"]) == 2 and published["open"] is None
    keys = Keys(stream=f"{key_prefix}:events", shards=3)
    assert {keys.stream_for(s) for s in published["sessions"]} <= {
        k.decode() for k in redis_client.scan_iter(f"{key_prefix}:events:*")
    }
