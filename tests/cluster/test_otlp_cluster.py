"""metrics-otlp on the local Redis Cluster: each event on its shard, under the cluster's shard tags."""

from __future__ import annotations

from pathlib import Path

from contract.connect import Client
from contract.keys import Keys
from tests.otlp.payloads import chats, encoded
from tests.otlp.serving import PROTOBUF, otlp_settings, routed_events, serving
from worker.dev.cluster import LocalCluster


def test_events_go_to_their_shards_on_a_redis_cluster(
    cluster: LocalCluster, cluster_client: Client, key_prefix: str, tmp_path: Path
) -> None:
    keys = Keys(f"{key_prefix}:events", 3)
    with serving(otlp_settings(cluster.url, keys.stream, tmp_path, 3)) as receiver:
        for trace in range(1, 13):
            assert receiver.post(encoded(chats(2, trace=trace), PROTOBUF)).status_code == 200
        assert receiver.app.publishing.backlog >= 0
    assert routed_events(cluster_client, keys) >= 24
