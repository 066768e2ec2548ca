"""/v1/pipeline and ``metrics-worker status --json`` agree on a real 3-master Redis Cluster, with
dead letters the worker made on every shard (each in its shard's slot)."""

from __future__ import annotations

import pytest

from contract.connect import Client, node_for, placed
from tests.ingest.helpers import settings
from tests.status_views import check_agreement
from worker.dev.cluster import LocalCluster


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
