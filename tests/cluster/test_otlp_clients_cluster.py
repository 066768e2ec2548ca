"""The real OpenTelemetry clients against ``metrics-otlp`` on the local Redis Cluster, three shards:
the Python SDK's protobuf export, sent twice, lands once; the JavaScript SDK's session lands; each
as its in-memory exporter saw it (tests/otlp has the same on one Redis)."""

from __future__ import annotations

import psycopg
import pytest

from contract.connect import Client
from tests.ingest.helpers import drain, settings
from tests.otlp.expect import assert_landed
from tests.otlp.receiver import TOKEN, client_env, receiver
from tests.otlp.runs import node_session, sdk_session
from worker.dev.cluster import LocalCluster

pytestmark = pytest.mark.acceptance


def test_the_python_and_javascript_sdks_land_through_a_cluster_once(
    conn: psycopg.Connection, db_url: str, cluster: LocalCluster, cluster_client: Client, key_prefix: str
) -> None:
    s = settings(db_url, cluster.url, key_prefix, shards=3)
    with receiver(s, token=TOKEN) as url:
        python = sdk_session("proto", client_env(url, token=TOKEN), "--resend")
        javascript = node_session(client_env(url, token=TOKEN))
    python.assert_exported()
    javascript.assert_exported()
    drain(s)
    both = type(python.seen)(python.seen.spans + javascript.seen.spans)
    assert_landed(conn, both)
