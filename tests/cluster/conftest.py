"""A real local Redis Cluster for the suite: 3 masters on loopback ports of 7000-7099 (the
failover drill starts its own, with one replica per master). Started once per session; each test
keeps to its own key prefix, so tests share it as they share the single Redis."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from contract.connect import Client, connect
from worker.dev.cluster import LocalCluster, start_cluster


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    started = start_cluster(tmp_path_factory.mktemp("cluster"))
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture
def cluster_client(cluster: LocalCluster, key_prefix: str) -> Iterator[Client]:
    client = connect(cluster.url)
    try:
        yield client
    finally:
        for node in client.get_primaries():  # type: ignore[union-attr]
            node_client = client.get_redis_connection(node)  # type: ignore[union-attr]
            for key in node_client.scan_iter(f"{key_prefix}*", count=1000):
                node_client.delete(key)
        client.close()
