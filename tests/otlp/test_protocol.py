"""The OTLP/HTTP protocol against a real Redis, over raw HTTP: content types, gzip, chunked
bodies, the body limit, the answers (google.rpc.Status, partial success), tokens."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from contract.codec import STREAM_FIELD, decode
from producer.otlp.settings import OtlpSettings
from producer.settings import ProducerSettings
from tests.otlp.payloads import chat_span, chats, encoded, request
from tests.otlp.serving import JSON, PROTOBUF, Receiver, serving, status_of

BOTH = [PROTOBUF, JSON]
INGEST = "ingest-token-0123456789abcdef"


def settings_for(redis_url: str, key_prefix: str, tmp_path: Path, **values: object) -> OtlpSettings:
    producer = ProducerSettings(
        redis_url=redis_url, stream=f"{key_prefix}:events", spool_dir=tmp_path / "spool"
    )
    return OtlpSettings(producer=producer, **values)  # type: ignore[arg-type]


@pytest.fixture
def receiver(
    redis_url: str, key_prefix: str, redis_client: redis.Redis, tmp_path: Path
) -> Iterator[Receiver]:
    with serving(settings_for(redis_url, key_prefix, tmp_path, max_body=64 * 1024)) as r:
        yield r


def stream_events(client: redis.Redis, stream: str) -> list[object]:
    return [decode(fields[STREAM_FIELD.encode()]) for _, fields in client.xrange(stream)]


def parse_success(response: object, content_type: str) -> tuple[int, str]:
    """(rejected_spans, error_message) of an ExportTraceServiceResponse."""
    if content_type == JSON:
        partial = response.json().get("partialSuccess", {})  # type: ignore[attr-defined]
        return int(partial.get("rejectedSpans", 0)), partial.get("errorMessage", "")
    message = ExportTraceServiceResponse()
    message.ParseFromString(response.content)  # type: ignore[attr-defined]
    return message.partial_success.rejected_spans, message.partial_success.error_message


@pytest.mark.parametrize("content_type", BOTH)
def test_an_export_lands_in_the_stream_and_is_answered_in_its_content_type(
    receiver: Receiver, redis_client: redis.Redis, key_prefix: str, content_type: str
) -> None:
    response = receiver.post(encoded(chats(3), content_type), content_type)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == content_type
    assert parse_success(response, content_type) == (0, "")
    landed = stream_events(redis_client, f"{key_prefix}:events")
    assert len(landed) >= 3  # at least one event per chat span, in Redis before the answer


@pytest.mark.parametrize("content_type", BOTH)
def test_an_empty_request_succeeds(receiver: Receiver, content_type: str) -> None:
    for body in (b"", encoded(request(), content_type)) if content_type == PROTOBUF else (b"{}",):
        response = receiver.post(body, content_type)
        assert response.status_code == 200, response.text
        assert parse_success(response, content_type) == (0, "")


@pytest.mark.parametrize("content_type", BOTH)
def test_gzip_bodies_are_decompressed(
    receiver: Receiver, redis_client: redis.Redis, key_prefix: str, content_type: str
) -> None:
    body = gzip.compress(encoded(chats(2), content_type))
    response = receiver.post(body, content_type, **{"content-encoding": "gzip"})
    assert response.status_code == 200, response.text
    assert len(stream_events(redis_client, f"{key_prefix}:events")) >= 2


def test_a_chunked_body_without_content_length_is_read_whole(
    receiver: Receiver, redis_client: redis.Redis, key_prefix: str
) -> None:
    """As the JavaScript SDK sends: Transfer-Encoding: chunked, no Content-Length."""
    import httpx

    body = encoded(chats(4), PROTOBUF)

    def pieces() -> Iterator[bytes]:
        for i in range(0, len(body), 100):
            yield body[i : i + 100]

    with httpx.Client() as client:
        request_ = client.build_request(
            "POST", f"{receiver.url}/v1/traces", content=pieces(), headers={"content-type": PROTOBUF}
        )
        assert "content-length" not in request_.headers and request_.headers["transfer-encoding"] == "chunked"
        response = client.send(request_)
    assert response.status_code == 200, response.text
    assert len(stream_events(redis_client, f"{key_prefix}:events")) >= 4


@pytest.mark.parametrize("content_type", BOTH)
def test_a_body_over_the_limit_is_413_counted_after_decompression(
    receiver: Receiver, redis_client: redis.Redis, key_prefix: str, content_type: str
) -> None:
    big = encoded(chats(400), content_type)
    assert len(big) > 64 * 1024
    small_compressed = gzip.compress(big)
    assert len(small_compressed) < 64 * 1024  # under the limit as sent, over it decompressed
    for body, headers in ((big, {}), (small_compressed, {"content-encoding": "gzip"})):
        response = receiver.post(body, content_type, **headers)
        assert response.status_code == 413, response.text
        code, message = status_of(response)
        assert code == 8 and "65536" in message and "METRICS_OTLP_MAX_BODY" in message
    assert redis_client.exists(f"{key_prefix}:events") == 0


def test_a_gzip_bomb_is_refused_without_being_inflated(receiver: Receiver) -> None:
    bomb = gzip.compress(b"\0" * (50 * 1024 * 1024), compresslevel=9)  # 50 MiB of zeros in ~50 KiB
    response = receiver.post(bomb, PROTOBUF, **{"content-encoding": "gzip"})
    assert response.status_code == 413
    assert receiver.app._inflight_bytes == 0


@pytest.mark.parametrize(
    ("content_type", "body", "names"),
    [
        (PROTOBUF, b"\xff\xff\xff\xff not protobuf", "protobuf"),
        (JSON, b"{not json", "not JSON"),
        (
            JSON,
            json.dumps(request(chat_span(1, 1) | {"traceId": "AAAAAAAAAAAAAAAAAAAAAQ=="})).encode(),
            "traceId",
        ),
        (
            JSON,
            json.dumps(request(chat_span(1, 1) | {"startTimeUnixNano": "soon"})).encode(),
            "startTimeUnixNano",
        ),
    ],
)
def test_an_undecodable_body_is_400_with_a_status_that_says_what(
    receiver: Receiver, content_type: str, body: bytes, names: str
) -> None:
    response = receiver.post(body, content_type)
    assert response.status_code == 400
    assert response.headers["content-type"] == content_type
    code, message = status_of(response)
    assert code == 3 and names in message, message


def test_bad_gzip_is_400(receiver: Receiver) -> None:
    response = receiver.post(b"\x1f\x8b\x08\x00garbage", PROTOBUF, **{"content-encoding": "gzip"})
    assert response.status_code == 400
    assert "gzip" in status_of(response)[1]
    truncated = gzip.compress(encoded(chats(3), PROTOBUF))[:-12]
    response = receiver.post(truncated, PROTOBUF, **{"content-encoding": "gzip"})
    assert response.status_code == 400 and "truncated" in status_of(response)[1]


@pytest.mark.parametrize(
    "headers",
    [{"content-type": "text/plain"}, {"content-type": PROTOBUF, "content-encoding": "br"}],
)
def test_an_unsupported_content_type_or_encoding_is_415(receiver: Receiver, headers: dict[str, str]) -> None:
    import httpx

    response = httpx.post(f"{receiver.url}/v1/traces", content=b"x", headers=headers)
    assert response.status_code == 415
    code, message = status_of(response)
    assert code == 3 and ("text/plain" in message or "'br'" in message)


@pytest.mark.parametrize("content_type", BOTH)
def test_spans_that_cannot_be_mapped_are_a_partial_success_naming_them(
    receiver: Receiver, redis_client: redis.Redis, key_prefix: str, content_type: str
) -> None:
    spans = [chat_span(7, 1)] + [chat_span(7, 100 + i, model=None) for i in range(8)]
    response = receiver.post(encoded(request(*spans), content_type), content_type)
    assert response.status_code == 200, response.text
    rejected, message = parse_success(response, content_type)
    assert rejected == 8
    assert f"{100:016x}" in message and "and 3 more" in message, message
    assert len(stream_events(redis_client, f"{key_prefix}:events")) >= 1  # the good span's events


def test_metrics_and_healthz_need_no_token_and_count(redis_url: str, key_prefix: str, tmp_path: Path) -> None:
    import httpx

    with serving(settings_for(redis_url, key_prefix, tmp_path), tokens=(INGEST,)) as receiver:
        assert receiver.post(encoded(chats(2), PROTOBUF), authorization=f"Bearer {INGEST}").status_code == 200
        assert receiver.post(b"junk", PROTOBUF, authorization=f"Bearer {INGEST}").status_code == 400
        health = httpx.get(f"{receiver.url}/healthz")
        assert health.status_code == 200 and health.json()["redis"] == "up"
        text = httpx.get(f"{receiver.url}/metrics").text
    assert "metrics_otlp_spans_received_total 2.0" in text
    assert 'metrics_otlp_requests_refused_total{reason="undecodable"} 1.0' in text
    assert "metrics_otlp_request_seconds_count 2.0" in text
    assert "metrics_otlp_events_published_total" in text


def test_tokens_are_required_and_read_tokens_do_not_write(
    redis_url: str,
    key_prefix: str,
    tmp_path: Path,
    redis_client: redis.Redis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    read_token = "read-token-0123456789abcdef"
    monkeypatch.setenv("METRICS_API_TOKENS", read_token)
    body = encoded(chats(1), PROTOBUF)
    with serving(settings_for(redis_url, key_prefix, tmp_path), tokens=(INGEST,)) as receiver:
        for headers in (
            {},
            {"authorization": "Bearer wrong-token-0123456789"},
            {"authorization": f"Bearer {read_token}"},
        ):
            response = receiver.post(body, PROTOBUF, **headers)
            assert response.status_code == 401, headers
            assert response.headers["www-authenticate"].startswith("Bearer")
            assert status_of(response)[0] == 16
        assert redis_client.exists(f"{key_prefix}:events") == 0
        assert receiver.post(body, PROTOBUF, authorization=f"Bearer {INGEST}").status_code == 200
