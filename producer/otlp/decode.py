"""An ``ExportTraceServiceRequest`` body to :class:`~producer.otlp.spans.Span`, for both content
types OTLP/HTTP has.

- ``application/x-protobuf``: the ``opentelemetry-proto`` classes (protobuf's C parser), then a
  walk that turns ids into lowercase hex and AnyValues into plain Python;
- ``application/json``: OTLP/JSON, which is not generic proto3 JSON (its ids are hex, not base64):
  a walk over ``json.loads``'s output. Keys are lowerCamelCase (the proto's own snake_case names
  are accepted too, as proto3 JSON parsers do); enums are integers (their names accepted too);
  int64 values are strings or numbers; ``bytesValue`` is base64; unknown fields are ignored.

A body that is not such a request raises :class:`DecodeError`, whose message names where
(``resourceSpans[0].scopeSpans[1].spans[7].traceId``), the value and the reason: the receiver
answers it 400.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Callable, Mapping
from typing import Any

from google.protobuf.message import DecodeError as ProtobufDecodeError  # type: ignore[import-untyped]
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import ArrayValue, KeyValueList

from producer.otlp.spans import Span, SpanEvent

__all__ = ["DecodeError", "decode_json", "decode_protobuf"]

_ZERO_SPAN = "0" * 16
_KINDS = {
    f"SPAN_KIND_{n}": i
    for i, n in enumerate(("UNSPECIFIED", "INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER"))
}
_STATUSES = {"STATUS_CODE_UNSET": 0, "STATUS_CODE_OK": 1, "STATUS_CODE_ERROR": 2}
_HEX = frozenset("0123456789abcdef")
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
                where = f"resourceSpans[{r}].scopeSpans[{s}].spans[{i}]"
                parent = span.parent_span_id.hex() if span.parent_span_id else None
                if parent is not None and len(span.parent_span_id) != 8:
                    raise DecodeError(
                        f"{where}.parentSpanId: {parent!r} is {len(span.parent_span_id)} bytes, not 8"
                    )
                status = span.status
                spans.append(
                    Span(
                        trace_id=_pb_id(span.trace_id, 16, where, "traceId"),
                        span_id=_pb_id(span.span_id, 8, where, "spanId"),
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
                        ),
                        dropped_events_count=span.dropped_events_count,
                    )
                )
    return spans


def _pb_id(raw: bytes, size: int, where: str, name: str) -> str:
    if len(raw) != size:
        raise DecodeError(f"{where}.{name}: {raw.hex()!r} is {len(raw)} bytes, not {size}")
    return raw.hex()


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


# -- OTLP/JSON --------------------------------------------------------------------------------


def decode_json(body: bytes) -> list[Span]:
    """Spans of an OTLP/JSON ``ExportTraceServiceRequest``. Raises DecodeError."""
    try:
        request = json.loads(body)
    except RecursionError:
        raise DecodeError("body: JSON nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise DecodeError(f"body: not JSON ({exc})") from None
    try:
        return _fast_request(request)
    except Exception:  # anything off the common shape: the careful walk reads it, or names what is wrong
        return _careful_request(request)


def _careful_request(request: Any) -> list[Span]:
    """The walk that keeps the path of everything it reads, to name it in an error."""
    spans: list[Span] = []
    for r, resource_spans in _items(request, "resourceSpans", "resource_spans", "body"):
        where_r = f"resourceSpans[{r}]"
        resource = _attributes(
            _object(_get(resource_spans, "resource", "resource"), f"{where_r}.resource"),
            where_r + ".resource",
        )
        for s, scope_spans in _items(resource_spans, "scopeSpans", "scope_spans", where_r):
            where_s = f"{where_r}.scopeSpans[{s}]"
            scope_obj = _object(_get(scope_spans, "scope", "scope"), f"{where_s}.scope")
            scope = _string(scope_obj.get("name"), f"{where_s}.scope.name")
            for i, span in _items(scope_spans, "spans", "spans", where_s):
                spans.append(_json_span(span, f"{where_s}.spans[{i}]", resource, scope))
    return spans


def _json_span(span: dict[str, Any], where: str, resource: Mapping[str, Any], scope: str) -> Span:
    parent = _get(span, "parentSpanId", "parent_span_id")
    parent_id = _hex_id(parent, 16, f"{where}.parentSpanId") if parent else None
    status = _object(_get(span, "status", "status"), f"{where}.status")
    return Span(
        trace_id=_hex_id(_get(span, "traceId", "trace_id"), 32, f"{where}.traceId"),
        span_id=_hex_id(_get(span, "spanId", "span_id"), 16, f"{where}.spanId"),
        parent_span_id=None if parent_id is None or parent_id == _ZERO_SPAN else parent_id,
        name=_string(span.get("name"), f"{where}.name"),
        kind=_enum(span.get("kind"), _KINDS, f"{where}.kind"),
        start_ns=_int(_get(span, "startTimeUnixNano", "start_time_unix_nano"), f"{where}.startTimeUnixNano"),
        end_ns=_int(_get(span, "endTimeUnixNano", "end_time_unix_nano"), f"{where}.endTimeUnixNano"),
        attributes=_attributes(span, where),
        resource=resource,
        scope=scope,
        status_code=_enum(status.get("code"), _STATUSES, f"{where}.status.code"),
        status_message=_string(status.get("message"), f"{where}.status.message"),
        events=tuple(
            SpanEvent(
                _string(event.get("name"), f"{where}.events[{e}].name"),
                _int(_get(event, "timeUnixNano", "time_unix_nano"), f"{where}.events[{e}].timeUnixNano"),
                _attributes(event, f"{where}.events[{e}]"),
            )
            for e, event in _items(span, "events", "events", where)
        ),
        dropped_events_count=_int(
            _get(span, "droppedEventsCount", "dropped_events_count"), f"{where}.droppedEventsCount"
        ),
    )


def _get(obj: dict[str, Any], camel: str, snake: str) -> Any:
    value = obj.get(camel)
    return obj.get(snake) if value is None else value


def _object(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise DecodeError(f"{where}: must be an object, got {_shown(value)}")
    return value


def _items(obj: Any, camel: str, snake: str, where: str) -> list[tuple[int, dict[str, Any]]]:
    """The objects of the list ``obj[camel]`` (absent: none), numbered."""
    if not isinstance(obj, dict):
        raise DecodeError(f"{where}: must be an object, got {_shown(obj)}")
    values = _get(obj, camel, snake)
    if values is None:
        return []
    path = f"{where}.{camel}" if where != "body" else camel
    if not isinstance(values, list):
        raise DecodeError(f"{path}: must be a list, got {_shown(values)}")
    for n, value in enumerate(values):
        if not isinstance(value, dict):
            raise DecodeError(f"{path}[{n}]: must be an object, got {_shown(value)}")
    return list(enumerate(values))


def _hex_id(value: Any, digits: int, where: str) -> str:
    if not isinstance(value, str) or len(value) != digits or not _HEX.issuperset(value.lower()):
        raise DecodeError(
            f"{where}: must be {digits} hex digits (OTLP/JSON ids are hex, not base64), got {_shown(value)}"
        )
    return value.lower()


def _string(value: Any, where: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise DecodeError(f"{where}: must be a string, got {_shown(value)}")
    return value


def _int(value: Any, where: str) -> int:
    """An int64/uint64/fixed64 field: a JSON number or a decimal string (0 when absent)."""
    if value is None:
        return 0
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            pass
    raise DecodeError(f"{where}: must be an integer (a number or a decimal string), got {_shown(value)}")


def _enum(value: Any, names: Mapping[str, int], where: str) -> int:
    if value is None:
        return 0
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value in names:
        return names[value]
    raise DecodeError(f"{where}: must be an integer enum value, got {_shown(value)}")


def _attributes(obj: dict[str, Any], where: str, name: str = "attributes") -> dict[str, Any]:
    """A list of KeyValue (``attributes``, or a kvlistValue's ``values``) as a dict."""
    out: dict[str, Any] = {}
    for n, kv in _items(obj, name, name, where):
        at = f"{where}.{name}[{n}]"
        out[_string(kv.get("key"), f"{at}.key")] = _value(kv.get("value"), f"{at}.value")
    return out


def _double(value: Any, where: str) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):  # proto3 JSON writes NaN and the infinities as strings
        special = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
        if value in special:
            return special[value]
        try:
            return float(value)
        except ValueError:
            pass
    raise DecodeError(f"{where}: must be a number, got {_shown(value)}")


def _bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise DecodeError(f"{where}: must be true or false, got {_shown(value)}")
    return value


def _bytes(value: Any, where: str) -> bytes:
    if isinstance(value, str):
        try:
            padded = value + "=" * (-len(value) % 4)  # proto3 JSON takes either alphabet, padded or not
            return base64.b64decode(
                padded, altchars=b"-_" if "-" in value or "_" in value else None, validate=True
            )
        except (binascii.Error, ValueError):
            pass
    raise DecodeError(f"{where}: must be base64, got {_shown(value)}")


def _array(value: Any, where: str) -> list[Any]:
    values = _object(value, where).get("values") or []
    if not isinstance(values, list):
        raise DecodeError(f"{where}.values: must be a list, got {_shown(values)}")
    return [_value(v, f"{where}.values[{n}]") for n, v in enumerate(values)]


def _kvlist(value: Any, where: str) -> dict[str, Any]:
    return _attributes(_object(value, where), where, "values")


_VALUES: dict[str, Callable[[Any, str], Any]] = {
    "stringValue": _string,
    "string_value": _string,
    "boolValue": _bool,
    "bool_value": _bool,
    "intValue": _int,
    "int_value": _int,
    "doubleValue": _double,
    "double_value": _double,
    "bytesValue": _bytes,
    "bytes_value": _bytes,
    "arrayValue": _array,
    "array_value": _array,
    "kvlistValue": _kvlist,
    "kvlist_value": _kvlist,
}


def _value(value: Any, where: str) -> Any:
    """An AnyValue as plain Python; an empty one (no kind set) is None."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise DecodeError(f"{where}: must be an AnyValue object, got {_shown(value)}")
    for key, item in value.items():
        parse = _VALUES.get(key)
        if parse is not None:
            return parse(item, f"{where}.{key}")
    return None  # no kind (or only kinds this receiver does not know): unset


def _shown(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, bytes) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# -- OTLP/JSON, the common shape, fast -----------------------------------------------------------
# Requests as SDKs write them (lowerCamelCase, integer enums, known keys only) without building a
# path per value: a third of the careful walk's time. Anything else raises, and decode_json reads
# the request again with the careful walk, which accepts it or names the mistake; so both give the
# same spans wherever this one succeeds (tests/otlp/test_decode.py compares them).

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


class _Uncommon(Exception):
    """Not the common shape: read it with the careful walk."""


def _known(obj: Any, keys: frozenset[str]) -> dict[str, Any]:
    if type(obj) is not dict or not keys.issuperset(obj):
        raise _Uncommon
    return obj


def _fast_request(request: Any) -> list[Span]:
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
        raise _Uncommon
    events = span.get("events")
    return Span(
        trace_id=_fast_hex(span["traceId"], 32),
        span_id=_fast_hex(span["spanId"], 16),
        parent_span_id=None if parent_id is None or parent_id == _ZERO_SPAN else parent_id,
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
    raise _Uncommon


def _fast_hex(value: Any, digits: int) -> str:
    if type(value) is not str or len(value) != digits:
        raise _Uncommon
    lower = str(value).lower()
    if not _HEX.issuperset(lower):
        raise _Uncommon
    return lower


def _fast_str(value: Any) -> str:
    if type(value) is str:
        return value
    if value is None:
        return ""
    raise _Uncommon


def _fast_int(value: Any) -> int:
    if type(value) is str:
        return int(value)
    if type(value) is int:
        return value
    if value is None:
        return 0
    raise _Uncommon


def _fast_attributes(attributes: Any) -> dict[str, Any]:
    if attributes is None:
        return {}
    if type(attributes) is not list:
        raise _Uncommon
    out: dict[str, Any] = {}
    for kv in attributes:
        key = kv["key"]
        if type(key) is not str:
            raise _Uncommon
        out[key] = _fast_value(kv["value"])
    return out


def _fast_value(value: Any) -> Any:
    if type(value) is not dict or len(value) != 1:
        raise _Uncommon
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
    raise _Uncommon
