"""One span as the receiver sees it, whichever content type carried it.

The decoders (protobuf and OTLP/JSON) fill :class:`Span` from an ``ExportTraceServiceRequest``;
the mapping (producer/otlp/mapping.py) reads nothing else. Ids are lowercase hex, as OTLP/JSON
writes them (32 characters for a trace, 16 for a span); attribute values are plain Python: str,
bool, int, float, bytes, list (arrayValue) and dict (kvlistValue); times are unix nanoseconds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

#: Span.kind values (opentelemetry.proto.trace.v1.Span.SpanKind).
KIND_UNSPECIFIED, KIND_INTERNAL, KIND_SERVER, KIND_CLIENT, KIND_PRODUCER, KIND_CONSUMER = range(6)
#: Span.status_code values (opentelemetry.proto.trace.v1.Status.StatusCode).
STATUS_UNSET, STATUS_OK, STATUS_ERROR = range(3)


# Not frozen: nothing changes a span once decoded, and a frozen dataclass's __init__ costs four
# times a plain one's (1.8 µs more per span, a tenth of decoding a protobuf request).


@dataclass(slots=True)
class SpanEvent:
    name: str
    time_ns: int
    attributes: Mapping[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Span:
    trace_id: str
    span_id: str
    parent_span_id: str | None  # None for a root span (an empty or all-zero parent id)
    name: str
    kind: int
    start_ns: int
    end_ns: int
    attributes: Mapping[str, Any]
    #: The resource's attributes (service.name, ...): one mapping shared by the spans of a resource.
    resource: Mapping[str, Any]
    scope: str = ""  # the instrumentation scope's name
    status_code: int = STATUS_UNSET
    status_message: str = ""
    events: tuple[SpanEvent, ...] = ()
    #: How many events the SDK dropped (the Python SDK drops the oldest: the first may be missing).
    dropped_events_count: int = 0


@dataclass(frozen=True, slots=True)
class Rejection:
    """A span that could not become events: OTLP's partial success counts it, and its message names
    the span (trace and span id, span name), the field and the reason."""

    span_id: str
    trace_id: str
    name: str
    field: str
    reason: str

    def __str__(self) -> str:
        return f"span {self.span_id} ({self.name!r}, trace {self.trace_id}): {self.field}: {self.reason}"
