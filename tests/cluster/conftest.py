"""A real local Redis Cluster for the suite: 3 masters on loopback ports of 7000-7099 (the
failover drill starts its own, with one replica per master). Started once per session; each test
keeps to its own key prefix, so tests share it as they share the single Redis."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from contract.connect import Client, connect
from worker.dev.cluster import LocalCluster

PORTS = range(7000, 7100)


def free_ports(n: int) -> list[int]:
    """The first block of ``n`` consecutive free ports of PORTS, in steps of 10 (and for each
    node its cluster-bus port, +10000, free too)."""
    for base in range(PORTS.start, PORTS.stop - n + 1, 10):
        ports = list(range(base, base + n))
        if all(_free(p) and _free(p + 10000) for p in ports):
            return ports
    raise RuntimeError(f"no {n} free ports in {PORTS}")


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def start_cluster(folder: Path, masters: int = 3, replicas: int = 0) -> LocalCluster:
    return LocalCluster(folder, free_ports(masters * (1 + replicas)), masters, replicas).start()


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
