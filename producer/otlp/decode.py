"""An ``ExportTraceServiceRequest`` body to :class:`~producer.otlp.spans.Span`, for both content
types OTLP/HTTP has.

- ``application/x-protobuf``: the ``opentelemetry-proto`` classes (protobuf's C parser), then a
  walk that turns ids into lowercase hex and AnyValues into plain Python;
- ``application/json``: OTLP/JSON, which is not generic proto3 JSON (its ids are hex, not base64):
  ``json.loads``, then a walk over its output (producer/otlp/otlp_json.py).

A body that is not such a request raises :class:`DecodeError`, whose message names where
(``resourceSpans[0].scopeSpans[1].spans[7].traceId``), the value and the reason: the receiver
answers it 400.
"""

from __future__ import annotations

import json
from typing import Any

from google.protobuf.message import DecodeError as ProtobufDecodeError  # type: ignore[import-untyped]
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import ArrayValue, KeyValueList

from producer.otlp import otlp_json
from producer.otlp.spans import Span, SpanEvent

__all__ = ["DecodeError", "decode_json", "decode_protobuf"]

_ZERO_SPAN = "0" * 16
_NESTED = frozenset({ArrayValue, KeyValueList})


class DecodeError(ValueError):
    """A body that is not an ``ExportTraceServiceRequest``: where, what and why, for a 400."""


# -- protobuf ---------------------------------------------------------------------------------


def decode_protobuf(body: bytes) -> list[Span]:
    """Spans of a binary ``ExportTraceServiceRequest``. Raises DecodeError."""
    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(body)
    except ProtobufDecodeError as exc:
        raise DecodeError(f"body: not a protobuf ExportTraceServiceRequest ({exc})") from None
    spans: list[Span] = []
    for r, resource_spans in enumerate(request.resource_spans):
        resource = _pb_attributes(resource_spans.resource.attributes)
        for s, scope_spans in enumerate(resource_spans.scope_spans):
            scope = scope_spans.scope.name
            for i, span in enumerate(scope_spans.spans):
                trace_id, span_id, parent_id = span.trace_id, span.span_id, span.parent_span_id
                if len(trace_id) != 16 or len(span_id) != 8 or (parent_id and len(parent_id) != 8):
                    raise _bad_id(span, f"resourceSpans[{r}].scopeSpans[{s}].spans[{i}]")
                parent = parent_id.hex() if parent_id else None
                status = span.status
                spans.append(
                    Span(
                        trace_id=trace_id.hex(),
                        span_id=span_id.hex(),
                        parent_span_id=None if parent is None or parent == _ZERO_SPAN else parent,
                        name=span.name,
                        kind=span.kind,
                        start_ns=span.start_time_unix_nano,
                        end_ns=span.end_time_unix_nano,
                        attributes=_pb_attributes(span.attributes),
                        resource=resource,
                        scope=scope,
                        status_code=status.code,
                        status_message=status.message,
                        events=tuple(
                            SpanEvent(e.name, e.time_unix_nano, _pb_attributes(e.attributes))
                            for e in span.events
                        )
                        if span.events
                        else (),
                        dropped_events_count=span.dropped_events_count,
                    )
                )
    return spans


def _bad_id(span: Any, where: str) -> DecodeError:
    """The first of the span's ids that is not as long as OTLP says, named by its place."""
    for name, raw, size in (
        ("traceId", span.trace_id, 16),
        ("spanId", span.span_id, 8),
        ("parentSpanId", span.parent_span_id, 8),
    ):
        if len(raw) != size and (raw or name != "parentSpanId"):
            return DecodeError(f"{where}.{name}: {raw.hex()!r} is {len(raw)} bytes, not {size}")
    raise AssertionError("every id is as long as OTLP says")  # pragma: no cover


def _pb_attributes(attributes: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kv in attributes:  # _pb_value inlined for scalars: most attributes are
        fields = kv.value.ListFields()
        if fields:
            item = fields[0][1]
            out[kv.key] = _pb_value(kv.value) if type(item) in _NESTED else item
        else:
            out[kv.key] = None
    return out


def _pb_value(value: Any) -> Any:
    """An AnyValue as plain Python. ``ListFields`` (one call: the set oneof member, default values
    included) costs a third of ``WhichOneof`` plus ``getattr``."""
    fields = value.ListFields()
    if not fields:
        return None
    item = fields[0][1]
    kind = type(item)
    if kind is ArrayValue:
        return [_pb_value(v) for v in item.values]
    if kind is KeyValueList:
        return {kv.key: _pb_value(kv.value) for kv in item.values}
    return item  # str, bool, int, float, bytes


def decode_json(body: bytes) -> list[Span]:
    """Spans of an OTLP/JSON ``ExportTraceServiceRequest`` (read by otlp_json.py). Raises DecodeError."""
    try:
        request = json.loads(body)
    except RecursionError:
        raise DecodeError("body: JSON nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise DecodeError(f"body: not JSON ({exc})") from None
    try:
        return otlp_json.spans(request)
    except otlp_json.Mistake as exc:
        raise DecodeError(str(exc)) from None
    except RecursionError:  # values nested deeper than the walk may go
        raise DecodeError("body: attribute values nested too deeply") from None
