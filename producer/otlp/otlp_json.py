"""OTLP/JSON's ``ExportTraceServiceRequest`` (already parsed) walked into spans, as the
specification writes it, not as generic proto3 JSON: ids are hex (a generic parser reads them as
base64); keys are lowerCamelCase (the proto's snake_case names are accepted too, as proto3 JSON
parsers do); enums are integers (their names accepted too); int64 values are strings or numbers;
``bytesValue`` is base64; unknown fields are ignored.

The common shape goes through producer/otlp/otlp_json_fast.py; the rest through the careful walk
here, which keeps the path of everything it reads to name a mistake: :class:`Mistake`, whose
message says where (``resourceSpans[0].scopeSpans[1].spans[7].traceId``), the value and why.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Callable, Mapping
from typing import Any

from producer.otlp.otlp_json_fast import HEX, ZERO_SPAN, fast_spans
from producer.otlp.spans import Span, SpanEvent

_KINDS = {
    f"SPAN_KIND_{n}": i
    for i, n in enumerate(("UNSPECIFIED", "INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER"))
}
_STATUSES = {"STATUS_CODE_UNSET": 0, "STATUS_CODE_OK": 1, "STATUS_CODE_ERROR": 2}


class Mistake(ValueError):
    """Not an ExportTraceServiceRequest: where, what and why."""


def spans(request: Any) -> list[Span]:
    """The spans of a parsed OTLP/JSON request. Raises Mistake."""
    try:
        return fast_spans(request)
    except RecursionError:
        raise
    except Exception:  # Uncommon, or any surprise of a shape it does not expect: read it carefully
        return careful_spans(request)


def careful_spans(request: Any) -> list[Span]:
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
        parent_span_id=None if parent_id is None or parent_id == ZERO_SPAN else parent_id,
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
        raise Mistake(f"{where}: must be an object, got {_shown(value)}")
    return value


def _items(obj: Any, camel: str, snake: str, where: str) -> list[tuple[int, dict[str, Any]]]:
    """The objects of the list ``obj[camel]`` (absent: none), numbered."""
    if not isinstance(obj, dict):
        raise Mistake(f"{where}: must be an object, got {_shown(obj)}")
    values = _get(obj, camel, snake)
    if values is None:
        return []
    path = f"{where}.{camel}" if where != "body" else camel
    if not isinstance(values, list):
        raise Mistake(f"{path}: must be a list, got {_shown(values)}")
    for n, value in enumerate(values):
        if not isinstance(value, dict):
            raise Mistake(f"{path}[{n}]: must be an object, got {_shown(value)}")
    return list(enumerate(values))


def _hex_id(value: Any, digits: int, where: str) -> str:
    if not isinstance(value, str) or len(value) != digits or not HEX.issuperset(value.lower()):
        raise Mistake(
            f"{where}: must be {digits} hex digits (OTLP/JSON ids are hex, not base64), got {_shown(value)}"
        )
    return value.lower()


def _string(value: Any, where: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise Mistake(f"{where}: must be a string, got {_shown(value)}")
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
    raise Mistake(f"{where}: must be an integer (a number or a decimal string), got {_shown(value)}")


def _enum(value: Any, names: Mapping[str, int], where: str) -> int:
    if value is None:
        return 0
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value in names:
        return names[value]
    raise Mistake(f"{where}: must be an integer enum value, got {_shown(value)}")


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
    raise Mistake(f"{where}: must be a number, got {_shown(value)}")


def _bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise Mistake(f"{where}: must be true or false, got {_shown(value)}")
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
    raise Mistake(f"{where}: must be base64, got {_shown(value)}")


def _array(value: Any, where: str) -> list[Any]:
    values = _object(value, where).get("values") or []
    if not isinstance(values, list):
        raise Mistake(f"{where}.values: must be a list, got {_shown(values)}")
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
        raise Mistake(f"{where}: must be an AnyValue object, got {_shown(value)}")
    for key, item in value.items():
        parse = _VALUES.get(key)
        if parse is not None:
            return parse(item, f"{where}.{key}")
    return None  # no kind (or only kinds this receiver does not know): unset


def _shown(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, bytes) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
