"""/v1/pipeline and ``metrics-worker status --json`` agree on a real 3-master Redis Cluster, with
dead letters the worker made on every shard (each in its shard's slot), and both count what waits
unread on the base stream."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from contract.codec import STREAM_FIELD
from contract.connect import Client, node_for, placed
from contract.keys import Keys
from tests.contract.backlogs import check_readers_agree, fill
from tests.ingest.helpers import settings, worker_env
from tests.status_views import check_agreement, good
from worker.dev.cluster import LocalCluster
from worker.status import read_status


def test_the_api_and_the_status_command_agree_on_a_cluster(
    db_url: str,
    cluster: LocalCluster,
    cluster_client: Client,
    key_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    s = settings(db_url, cluster.url, key_prefix, shards=3)
    view = check_agreement(s, cluster_client, monkeypatch)
    keys = placed(s.keys, cluster_client)
    assert len({node_for(cluster_client, stream)[0] for stream in keys.streams}) == 3  # one per master
    assert [st["stream"] for st in view["streams"]] == keys.streams


def test_entries_on_the_base_stream_are_counted_on_a_cluster(
    db_url: str, cluster: LocalCluster, cluster_client: Client, key_prefix: str
) -> None:
    s = settings(db_url, cluster.url, key_prefix, shards=3)
    for i in range(2):
        cluster_client.xadd(s.stream, {STREAM_FIELD: good(i)})  # in the slot of its whole name
    assert read_status(cluster_client, s.keys, s.group).unrouted == 2
    done = subprocess.run(
        [sys.executable, "-m", "worker.cli", "status"],
        env=worker_env(s),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert f"WARNING: 2 entries in {s.stream}, the base stream, that no worker reads" in done.stdout


def test_every_reader_of_the_backlog_agrees_on_a_cluster(
    cluster: LocalCluster, cluster_client: Client, key_prefix: str, tmp_path: Path
) -> None:
    """contract.backlog on 3 shards over 3 masters (read per master) is what the status view, the
    worker and the OTLP receiver report, and what Redis counts."""
    keys = Keys(f"{key_prefix}:events", shards=3)
    fill(cluster_client, keys)
    assert len({node_for(cluster_client, stream)[0] for stream in placed(keys, cluster_client).streams}) == 3
    check_readers_agree(cluster_client, keys, cluster.url, tmp_path)
