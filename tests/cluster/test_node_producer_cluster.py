"""The Node.js producer of examples/node against the local Redis Cluster with three shards: it finds
the cluster by itself, writes to the tags contract/routing.py names, its sessions land exactly, and
its heartbeat (two untagged keys, maybe on two masters) keeps its idle session running."""

from __future__ import annotations

import psycopg
import pytest

from contract.connect import Client
from tests.examples.node import land_then_reconcile
from tests.ingest.helpers import settings
from worker.dev.cluster import LocalCluster

pytestmark = pytest.mark.acceptance


def test_node_sessions_land_on_cluster_shards_and_live_as_long_as_they_beat(
    conn: psycopg.Connection, db_url: str, cluster: LocalCluster, cluster_client: Client, key_prefix: str
) -> None:
    land_then_reconcile(conn, cluster_client, settings(db_url, cluster.url, key_prefix, shards=3))
