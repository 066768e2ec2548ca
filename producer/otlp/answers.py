"""What ``metrics-otlp`` answers, as bytes in the request's content type (OTLP/HTTP).

- success: an ``ExportTraceServiceResponse``, with ``partial_success`` (``rejected_spans`` and an
  ``error_message`` naming the first few spans and fields, "and N more") when some spans could not
  become events; the client must not retry those;
- every refusal (400, 401, 413, 415, 429, 503): a ``google.rpc.Status`` whose message says what was
  wrong. Its protobuf form is written here by hand (field 1 ``code``, field 2 ``message``, no
  ``details``): three fields do not need googleapis-common-protos at run time; the tests parse it
  with that package's ``status_pb2``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from producer.otlp.spans import Rejection

PROTOBUF = "application/x-protobuf"
JSON = "application/json"

#: google.rpc.Code values for the refusals.
INVALID_ARGUMENT, RESOURCE_EXHAUSTED, UNAVAILABLE, UNAUTHENTICATED = 3, 8, 14, 16
#: Rejections named one by one in a partial success's message; the rest are counted.
NAMED_REJECTIONS = 5


def success(content_type: str, rejected: Sequence[Rejection] = ()) -> bytes:
    """An ``ExportTraceServiceResponse``: empty when every span became events."""
    message = rejection_message(rejected) if rejected else ""
    if content_type == JSON:
        if not rejected:
            return b"{}"
        partial = {"rejectedSpans": str(len(rejected)), "errorMessage": message}  # int64 as a string
        return json.dumps({"partialSuccess": partial}).encode()
    response = ExportTraceServiceResponse()
    if rejected:
        response.partial_success.rejected_spans = len(rejected)
        response.partial_success.error_message = message
    return bytes(response.SerializeToString())


def rejection_message(rejected: Sequence[Rejection]) -> str:
    shown = "; ".join(str(r) for r in rejected[:NAMED_REJECTIONS])
    more = len(rejected) - NAMED_REJECTIONS
    return f"{len(rejected)} span(s) rejected: {shown}" + (f"; and {more} more" if more > 0 else "")


def status(content_type: str, code: int, message: str) -> bytes:
    """A ``google.rpc.Status`` (code, message) in ``content_type``; JSON for anything but protobuf."""
    if content_type != PROTOBUF:
        return json.dumps({"code": code, "message": message}).encode()
    text = message.encode()
    return b"\x08" + _varint(code) + b"\x12" + _varint(len(text)) + text


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        if n:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)
