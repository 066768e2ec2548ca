"""The OpenTelemetry Python SDK and the three OpenAI instrumentations, installed from the registry
into a venv of their own (tests/otlp/installs.py), export to ``metrics-otlp`` with nothing but
``OTEL_EXPORTER_OTLP_ENDPOINT`` (and ``OTEL_EXPORTER_OTLP_HEADERS`` for a token); after a worker
drained the stream, PostgreSQL holds exactly what each client's in-memory exporter saw: rounds and
their tokens per model (cached and reasoning included), tool calls, sessions and users, forwards."""

from __future__ import annotations

import uuid

import psycopg
import pytest
import redis

from tests.ingest.helpers import drain, settings
from tests.otlp.expect import Seen, assert_landed
from tests.otlp.openai_server import openai_server
from tests.otlp.receiver import TOKEN, client_env, receiver, run_client
from tests.otlp.runs import Run, script, sdk_session

pytestmark = pytest.mark.acceptance

#: Each instrumentation with the environment it runs in: openai-v2 records the messages (which
#: carry the tool call ids that tie a tool to its round) only when asked to, so both ways.
INSTRUMENTATIONS = {
    "openai-v2": {},
    "openai-v2 recording messages": {
        "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "SPAN_ONLY",
        "OTEL_SEMCONV_STABILITY_OPT_IN": "gen_ai_latest_experimental",
    },
    "openinference": {},
    "openinference gzipped": {"OTEL_EXPORTER_OTLP_COMPRESSION": "gzip"},  # the exporter's own gzip
    "openllmetry": {},
}
USER = "user-7"


def test_the_sdk_with_the_protobuf_exporter_lands_once_though_it_exported_twice(
    conn: psycopg.Connection, db_url: str, redis_url: str, key_prefix: str, redis_client: redis.Redis
) -> None:
    s = settings(db_url, redis_url, key_prefix, shards=3)
    with receiver(s) as url:
        run = sdk_session("proto", client_env(url), "--resend")
    run.assert_exported()
    assert any(e.startswith("resent: ") for e in run.exports)
    drain(s)
    assert run.conversation in run.seen.named_sessions() and len(run.seen.unnamed_traces()) == 1
    assert_landed(conn, run.seen)


def test_the_sdk_with_the_json_exporter_and_an_ingest_token(
    conn: psycopg.Connection, db_url: str, redis_url: str, key_prefix: str, redis_client: redis.Redis
) -> None:
    s = settings(db_url, redis_url, key_prefix)
    with receiver(s, token=TOKEN) as url:
        refused = sdk_session("json", client_env(url, token="not-the-ingest-token-0123456789")).exports
        assert refused and all(e.startswith("FAILURE") for e in refused), refused
        assert not any(redis_client.scan_iter(f"{key_prefix}*")), "a refused export reached Redis"
        run = sdk_session("json", client_env(url, token=TOKEN))
    run.assert_exported()
    drain(s)
    assert_landed(conn, run.seen)


@pytest.mark.parametrize("instrumentation", INSTRUMENTATIONS)
def test_an_instrumented_openai_client_lands_what_its_spans_say(
    instrumentation: str,
    conn: psycopg.Connection,
    db_url: str,
    redis_url: str,
    key_prefix: str,
    redis_client: redis.Redis,
) -> None:
    s = settings(db_url, redis_url, key_prefix)
    with receiver(s, token=TOKEN) as url, openai_server() as api:
        done = run_client(
            script(
                "instrumented.py",
                *("--instrumentation", instrumentation.split()[0], "--base-url", api),
                *("--session", f"s-{uuid.uuid4().hex[:8]}", "--user", USER),
            ),
            client_env(url, token=TOKEN, **INSTRUMENTATIONS[instrumentation]),
        )
    Run(Seen.of(done.stdout), Seen.exports(done.stdout), "").assert_exported()
    drain(s)
    assert_landed(conn, Seen.of(done.stdout))
