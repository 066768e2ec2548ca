"""OTLP/JSON requests of the common shape, read fast: as SDKs write them (lowerCamelCase, integer
enums, known keys only), without building a path per value, a third of the careful walk's time.

Anything else raises :class:`Uncommon`, and producer/otlp/otlp_json.py reads the request again
with the careful walk, which accepts it or names the mistake; so both give the same spans wherever
this one succeeds (tests/otlp/test_decode.py compares them).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from producer.otlp.spans import Span, SpanEvent

ZERO_SPAN = "0" * 16
HEX = frozenset("0123456789abcdef")

_REQUEST_KEYS = frozenset({"resourceSpans"})
_RESOURCE_SPANS_KEYS = frozenset({"resource", "scopeSpans", "schemaUrl"})
_RESOURCE_KEYS = frozenset({"attributes", "droppedAttributesCount"})
_SCOPE_SPANS_KEYS = frozenset({"scope", "spans", "schemaUrl"})
_SCOPE_KEYS = frozenset({"name", "version", "attributes", "droppedAttributesCount"})
_SPAN_KEYS = frozenset(
    {
        "traceId",
        "spanId",
        "parentSpanId",
        "name",
        "kind",
        "startTimeUnixNano",
        "endTimeUnixNano",
        "attributes",
        "events",
        "status",
        "droppedEventsCount",
        "traceState",
        "flags",
        "droppedAttributesCount",
        "links",
        "droppedLinksCount",
    }
)
_EVENT_KEYS = frozenset({"timeUnixNano", "name", "attributes", "droppedAttributesCount"})
_STATUS_KEYS = frozenset({"code", "message"})


class Uncommon(Exception):
    """Not the common shape: read it with the careful walk."""


def _known(obj: Any, keys: frozenset[str]) -> dict[str, Any]:
    if type(obj) is not dict or not keys.issuperset(obj):
        raise Uncommon
    return obj


def fast_spans(request: Any) -> list[Span]:
    spans: list[Span] = []
    for resource_spans in _fast_list(_known(request, _REQUEST_KEYS).get("resourceSpans")):
        _known(resource_spans, _RESOURCE_SPANS_KEYS)
        resource = _fast_attributes(
            _known(resource_spans.get("resource") or {}, _RESOURCE_KEYS).get("attributes")
        )
        for scope_spans in _fast_list(resource_spans.get("scopeSpans")):
            _known(scope_spans, _SCOPE_SPANS_KEYS)
            scope = _fast_str(_known(scope_spans.get("scope") or {}, _SCOPE_KEYS).get("name"))
            for span in _fast_list(scope_spans.get("spans")):
                spans.append(_fast_span(_known(span, _SPAN_KEYS), resource, scope))
    return spans


def _fast_span(span: dict[str, Any], resource: Mapping[str, Any], scope: str) -> Span:
    parent = span.get("parentSpanId")
    parent_id = _fast_hex(parent, 16) if parent else None
    status = _known(span.get("status") or {}, _STATUS_KEYS)
    kind, code = span.get("kind", 0), status.get("code", 0)
    if type(kind) is not int or type(code) is not int:
        raise Uncommon
    events = span.get("events")
    return Span(
        trace_id=_fast_hex(span["traceId"], 32),
        span_id=_fast_hex(span["spanId"], 16),
        parent_span_id=None if parent_id is None or parent_id == ZERO_SPAN else parent_id,
        name=_fast_str(span.get("name")),
        kind=kind,
        start_ns=_fast_int(span.get("startTimeUnixNano")),
        end_ns=_fast_int(span.get("endTimeUnixNano")),
        attributes=_fast_attributes(span.get("attributes")),
        resource=resource,
        scope=scope,
        status_code=code,
        status_message=_fast_str(status.get("message")),
        events=tuple(
            SpanEvent(
                _fast_str(_known(e, _EVENT_KEYS).get("name")),
                _fast_int(e.get("timeUnixNano")),
                _fast_attributes(e.get("attributes")),
            )
            for e in _fast_list(events)
        )
        if events
        else (),
        dropped_events_count=_fast_int(span.get("droppedEventsCount")),
    )


def _fast_list(value: Any) -> list[Any]:
    if type(value) is list:
        return value
    if value is None:
        return []
    raise Uncommon


def _fast_hex(value: Any, digits: int) -> str:
    if type(value) is not str or len(value) != digits:
        raise Uncommon
    lower = str(value).lower()
    if not HEX.issuperset(lower):
        raise Uncommon
    return lower


def _fast_str(value: Any) -> str:
    if type(value) is str:
        return value
    if value is None:
        return ""
    raise Uncommon


def _fast_int(value: Any) -> int:
    if type(value) is str:
        return int(value)
    if type(value) is int:
        return value
    if value is None:
        return 0
    raise Uncommon


def _fast_attributes(attributes: Any) -> dict[str, Any]:
    if attributes is None:
        return {}
    if type(attributes) is not list:
        raise Uncommon
    out: dict[str, Any] = {}
    for kv in attributes:
        key = kv["key"]
        if type(key) is not str:
            raise Uncommon
        out[key] = _fast_value(kv["value"])
    return out


def _fast_value(value: Any) -> Any:
    if type(value) is not dict or len(value) != 1:
        raise Uncommon
    ((kind, item),) = value.items()
    item_type = type(item)
    if kind == "stringValue" and item_type is str:
        return item
    if kind == "intValue" and item_type is str:
        return int(item)
    if kind == "intValue" and item_type is int:
        return item
    if kind == "boolValue" and item_type is bool:
        return item
    if kind == "doubleValue" and item_type in (float, int):
        return float(item)
    if kind == "arrayValue" and item_type is dict and len(item) == 1 and type(item.get("values")) is list:
        return [_fast_value(v) for v in item["values"]]
    if kind == "kvlistValue" and item_type is dict and len(item) == 1:
        return _fast_attributes(item.get("values"))
    raise Uncommon
