"""The OpenTelemetry JavaScript SDK (npm's, on this machine's Node.js) exports a session of GenAI
spans with its protobuf exporter to ``metrics-otlp``, configured by ``OTEL_EXPORTER_OTLP_ENDPOINT``
and ``OTEL_EXPORTER_OTLP_HEADERS`` alone; it sends chunked bodies with no Content-Length. After a
worker drained the stream, PostgreSQL holds what its in-memory exporter saw."""

from __future__ import annotations

import psycopg
import pytest
import redis

from tests.ingest.helpers import drain, settings
from tests.otlp.expect import assert_landed
from tests.otlp.receiver import TOKEN, client_env, receiver
from tests.otlp.runs import node_session

pytestmark = pytest.mark.acceptance


def test_the_javascript_sdk_exports_a_session_that_lands_as_its_spans_say(
    conn: psycopg.Connection, db_url: str, redis_url: str, key_prefix: str, redis_client: redis.Redis
) -> None:
    s = settings(db_url, redis_url, key_prefix, shards=2)
    with receiver(s, token=TOKEN) as url:
        run = node_session(client_env(url, token=TOKEN))
    run.assert_exported()
    assert run.seen.named_sessions() == {run.conversation}
    drain(s)
    assert_landed(conn, run.seen)
