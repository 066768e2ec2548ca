"""The decoders, without servers: OTLP/JSON read as the specification writes it (not as generic
proto3 JSON), and the same spans out of either content type."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from producer.otlp.decode import DecodeError, decode_json, decode_protobuf
from producer.otlp.otlp_json import careful_spans
from producer.otlp.spans import KIND_CLIENT, STATUS_ERROR
from tests.otlp.payloads import as_json, as_protobuf, chat_span, request

_leaf = (
    st.text(max_size=20)
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False)
    | st.binary(max_size=20)
)
_values = st.recursive(
    _leaf,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.text(max_size=12), _values, max_size=6))
def test_any_attributes_decode_the_same_from_json_and_protobuf(attrs: dict[str, Any]) -> None:
    req = request(chat_span(5, 6, parent=7, **attrs))
    from_json, from_protobuf = decode_json(as_json(req)), decode_protobuf(as_protobuf(req))
    assert from_json == from_protobuf
    assert careful_spans(json.loads(as_json(req))) == from_json  # the fast walk reads as the careful one
    for key, value in attrs.items():
        if key not in ("gen_ai.operation.name", "gen_ai.provider.name", "gen_ai.request.model"):
            assert from_json[0].attributes[key] == value


def test_otlp_json_as_the_specification_writes_it() -> None:
    span = {
        "traceId": "5B8EFFF798038103D269B633813FC60C",  # hex, in any case
        "spanId": "EEE19B7EC3C1B174",
        "parentSpanId": "0000000000000000",  # all zeros: a root span
        "name": "chat",
        "kind": 3,
        "startTimeUnixNano": 1544712660000000000,  # a number...
        "endTimeUnixNano": "1544712661000000000",  # ...or a string
        "attributes": [
            {"key": "n", "value": {"intValue": "9007199254740993"}},  # beyond a double's precision
            {"key": "d", "value": {"doubleValue": "Infinity"}},
            {"key": "b", "value": {"bytesValue": "AAE="}},
            {"key": "empty", "value": {}},
        ],
        "events": [{"timeUnixNano": "1544712660500000000", "name": "gen_ai.content.completion"}],
        "status": {"code": 2, "message": "boom"},
        "somethingNew": {"ignored": True},
    }
    body = {"resourceSpans": [{"resource": {}, "scopeSpans": [{"scope": {"name": "s"}, "spans": [span]}]}]}
    (decoded,) = decode_json(json.dumps(body).encode())
    assert decoded.trace_id == "5b8efff798038103d269b633813fc60c" and decoded.span_id == "eee19b7ec3c1b174"
    assert decoded.parent_span_id is None
    assert (
        decoded.kind == KIND_CLIENT
        and decoded.status_code == STATUS_ERROR
        and decoded.status_message == "boom"
    )
    assert (decoded.start_ns, decoded.end_ns) == (1544712660000000000, 1544712661000000000)
    assert decoded.attributes == {"n": 9007199254740993, "d": float("inf"), "b": b"\0\1", "empty": None}
    assert decoded.events[0].time_ns == 1544712660500000000 and decoded.scope == "s"


def test_snake_case_keys_and_enum_names_are_read_too() -> None:
    span = {
        "trace_id": "1" * 32,
        "span_id": "2" * 16,
        "kind": "SPAN_KIND_SERVER",
        "status": {"code": "STATUS_CODE_OK"},
    }
    body = {"resource_spans": [{"scope_spans": [{"spans": [span]}]}]}
    (decoded,) = decode_json(json.dumps(body).encode())
    assert (decoded.trace_id, decoded.kind, decoded.status_code) == ("1" * 32, 2, 1)


@pytest.mark.parametrize(
    ("change", "where"),
    [
        (
            {"traceId": "W46AX9TL0aUVTwOPgHmbvQ=="},
            "spans[0].traceId: must be 32 hex digits",
        ),  # base64: a generic encoder's
        ({"spanId": "xyz"}, "spans[0].spanId"),
        ({"kind": "CLIENT"}, "spans[0].kind"),
        ({"startTimeUnixNano": "1.5e9"}, "spans[0].startTimeUnixNano"),
        (
            {"attributes": [{"key": "k", "value": {"boolValue": "yes"}}]},
            "spans[0].attributes[0].value.boolValue",
        ),
        ({"attributes": {"k": "v"}}, "spans[0].attributes: must be a list"),
    ],
)
def test_a_json_mistake_is_named_by_its_path(change: dict[str, Any], where: str) -> None:
    body = as_json(request(chat_span(1, 1) | change))
    with pytest.raises(DecodeError) as raised:
        decode_json(body)
    assert str(raised.value).startswith(f"resourceSpans[0].scopeSpans[0].{where}"), raised.value


@pytest.mark.parametrize("body", [b"[]", b'"x"', b"{", b'{"resourceSpans": {}}', b'{"a": "\\ud800"}'[:-3]])
def test_json_that_is_not_a_request_is_a_decode_error(body: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_json(body)


def test_protobuf_garbage_and_wrong_id_lengths_are_decode_errors() -> None:
    with pytest.raises(DecodeError, match="not a protobuf"):
        decode_protobuf(b"\xff\xff\xff")
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    req = ExportTraceServiceRequest()
    span = req.resource_spans.add().scope_spans.add().spans.add()
    span.trace_id, span.span_id = b"\1" * 8, b"\2" * 8
    with pytest.raises(DecodeError, match=r"spans\[0\]\.traceId: .* is 8 bytes, not 16"):
        decode_protobuf(req.SerializeToString())
