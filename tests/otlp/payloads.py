"""OTLP requests for the tests, written once as OTLP/JSON objects and turned into protobuf by
protobuf's own JSON parser (after the hex ids become base64, which is what generic proto3 JSON
expects): so both content types carry the same spans."""

from __future__ import annotations

import base64
import copy
import json
import math
import time
from typing import Any

from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest


def value(v: Any) -> dict[str, Any]:
    """An AnyValue in OTLP/JSON."""
    if isinstance(v, bool):
        return {"boolValue": v}
    if isinstance(v, int):
        return {"intValue": str(v)}
    if isinstance(v, float):  # proto3 JSON writes the infinities (and NaN) as strings
        return {"doubleValue": v if math.isfinite(v) else ("Infinity" if v > 0 else "-Infinity")}
    if isinstance(v, bytes):
        return {"bytesValue": base64.b64encode(v).decode()}
    if isinstance(v, list):
        return {"arrayValue": {"values": [value(x) for x in v]}}
    if isinstance(v, dict):
        return {"kvlistValue": {"values": attributes(v)}}
    return {"stringValue": str(v)}


def attributes(values: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"key": k, "value": value(v)} for k, v in values.items()]


def chat_span(
    trace: int,
    span: int,
    model: str | None = "gpt-4o",
    input_tokens: int = 100,
    output_tokens: int = 20,
    parent: int | None = None,
    start_ns: int | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A GenAI chat span (the OpenTelemetry GenAI conventions), ids from small integers."""
    start = start_ns or time.time_ns() - 2_000_000_000
    attrs: dict[str, Any] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.usage.input_tokens": input_tokens,
        "gen_ai.usage.output_tokens": output_tokens,
        **extra,
    }
    if model is not None:
        attrs["gen_ai.request.model"] = model
    out: dict[str, Any] = {
        "traceId": f"{trace:032x}",
        "spanId": f"{span:016x}",
        "name": f"chat {model}",
        "kind": 3,
        "startTimeUnixNano": str(start),
        "endTimeUnixNano": str(start + 1_500_000_000),
        "attributes": attributes(attrs),
        "status": {"code": 0},
    }
    if parent is not None:
        out["parentSpanId"] = f"{parent:016x}"
    return out


def request(*spans: dict[str, Any], service: str = "agent") -> dict[str, Any]:
    """An ExportTraceServiceRequest in OTLP/JSON holding ``spans`` under one resource and scope."""
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": attributes({"service.name": service})},
                "scopeSpans": [{"scope": {"name": "tests.otlp"}, "spans": list(spans)}],
            }
        ]
    }


def chats(n: int, trace: int = 1, first_span: int = 1) -> dict[str, Any]:
    return request(*(chat_span(trace, first_span + i) for i in range(n)))


def as_json(req: dict[str, Any]) -> bytes:
    return json.dumps(req).encode()


def as_protobuf(req: dict[str, Any]) -> bytes:
    """The same request in binary protobuf: the ids from hex to base64 for protobuf's JSON parser."""
    generic = copy.deepcopy(req)
    for resource_spans in generic.get("resourceSpans", []):
        for scope_spans in resource_spans.get("scopeSpans", []):
            for span in scope_spans.get("spans", []):
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in span:
                        span[key] = base64.b64encode(bytes.fromhex(span[key])).decode()
    message = json_format.ParseDict(generic, ExportTraceServiceRequest())
    return bytes(message.SerializeToString())


def encoded(req: dict[str, Any], content_type: str) -> bytes:
    return as_json(req) if content_type == "application/json" else as_protobuf(req)
