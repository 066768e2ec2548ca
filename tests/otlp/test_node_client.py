"""The OpenTelemetry JavaScript SDK (npm's, on this machine's Node.js) exports a session of GenAI
spans with its protobuf exporter to ``metrics-otlp``, configured by ``OTEL_EXPORTER_OTLP_ENDPOINT``
and ``OTEL_EXPORTER_OTLP_HEADERS`` alone; it sends chunked bodies with no Content-Length. After a
worker drained the stream, PostgreSQL holds what its in-memory exporter saw."""

from __future__ import annotations

import uuid

import psycopg
import pytest
import redis

from tests.ingest.helpers import drain, settings
from tests.otlp.expect import Seen, assert_landed
from tests.otlp.installs import node_clients
from tests.otlp.receiver import TOKEN, client_env, receiver, run_client

pytestmark = pytest.mark.acceptance


def test_the_javascript_sdk_exports_a_session_that_lands_as_its_spans_say(
    conn: psycopg.Connection, db_url: str, redis_url: str, key_prefix: str, redis_client: redis.Redis
) -> None:
    s = settings(db_url, redis_url, key_prefix, shards=2)
    conversation = f"conv-{uuid.uuid4().hex[:8]}"
    script = str(node_clients() / "session.js")
    with receiver(s, token=TOKEN) as url:
        done = run_client(
            ["node", script, "--conversation", conversation, "--user", "user-js"],
            client_env(url, token=TOKEN),
        )
    seen = Seen.of(done.stdout)
    exports = Seen.exports(done.stdout)
    assert exports and all(e.startswith("SUCCESS") for e in exports), exports
    assert seen.named_sessions() == {conversation}
    drain(s)
    assert_landed(conn, seen)
