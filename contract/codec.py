"""Wire events to bytes, bytes to events, with errors that name the field, the value, the reason."""

from __future__ import annotations

import json
from typing import Any

from pydantic import TypeAdapter, ValidationError
from pydantic_core import ErrorDetails

from contract.events import RANK, SCHEMA_VERSION, Event, to_utc
from contract.fields import UNION_LABEL

#: The one field of a stream entry; its value is the event's JSON.
STREAM_FIELD = "event"

_adapter: TypeAdapter[Event] = TypeAdapter(Event)
_validator = _adapter.validator  # pydantic-core's, without TypeAdapter's per-call Python wrapper


class ContractError(ValueError):
    """An entry that is not a valid event. ``field`` is a dotted path ('usage.prompt_tokens')."""

    def __init__(self, field: str, value: Any, reason: str) -> None:
        self.field = field
        self.value = value
        self.reason = reason
        shown = repr(value)
        if len(shown) > 120:
            shown = shown[:117] + "..."
        super().__init__(f"{field}: {reason} (got {shown})")


def encode(event: Event) -> bytes:
    """The event's wire form (compact JSON, UTF-8)."""
    return event.__pydantic_serializer__.to_json(event)


def decode(raw: bytes | str) -> Event:
    """Validate one wire payload. Raises ContractError naming the first offending field."""
    if isinstance(raw, bytes):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ContractError(
                "event", raw[max(0, exc.start - 8) : exc.end + 8], f"not valid UTF-8 at byte {exc.start}"
            ) from None
    else:
        text = raw
    try:
        event = _validator.validate_json(text)
    except ValidationError as exc:
        raise _explain(text, exc) from None
    return _in_utc(event)


def validate(data: dict[str, Any]) -> Event:
    """Validate an already-parsed event (e.g. a dict built by a caller)."""
    try:
        event = _validator.validate_python(data)
    except ValidationError as exc:
        raise _explain(data, exc) from None
    return _in_utc(event)


def _in_utc(event: Event) -> Event:
    at = event.occurred_at
    if not at.utcoffset():
        return event
    try:
        return event.model_copy(update={"occurred_at": to_utc(at)})
    except OverflowError:
        raise ContractError("occurred_at", at.isoformat(), "is out of range once converted to UTC") from None


def _explain(source: str | dict[str, Any], exc: ValidationError) -> ContractError:
    """Turn pydantic's error list into one ContractError, most useful reason first."""
    if isinstance(source, str):
        try:
            data: Any = json.loads(source)
        except RecursionError:
            return ContractError("event", source, "nested too deeply to parse")
        except ValueError as err:
            return ContractError("event", source, f"not valid JSON: {err}")
    else:
        data = source
    if not isinstance(data, dict):
        return ContractError("event", data, f"must be a JSON object, not {type(data).__name__}")
    # A newer schema or an unknown type explains every other error: report it first.
    version = data.get("v", SCHEMA_VERSION)
    if isinstance(version, int) and not isinstance(version, bool) and version > SCHEMA_VERSION:
        return ContractError(
            "v", version, f"schema version is newer than the supported version {SCHEMA_VERSION}"
        )
    if "type" not in data:
        return ContractError("type", None, "is required")
    if not isinstance(data["type"], str) or data["type"] not in RANK:  # a list or an object is unhashable
        return ContractError("type", data["type"], f"unknown event type; expected one of {sorted(RANK)}")
    error = exc.errors(include_url=False)[0]
    loc = [str(part) for part in error["loc"] if not str(part).startswith(UNION_LABEL)]
    if loc and loc[0] == data["type"]:
        loc = loc[1:]  # pydantic prefixes the discriminator's tag
    field = ".".join(loc) or "event"
    value = _lookup(data, loc)
    return ContractError(field, value, _reason(error, loc, value))


_RFC3339 = "must be an RFC 3339 timestamp: YYYY-MM-DDTHH:MM:SS[.fraction] then Z or ±HH:MM"


def _reason(error: ErrorDetails, loc: list[str], value: Any) -> str:
    kind = error["type"]
    if kind == "missing":
        return "is required"
    if loc[-1:] == ["occurred_at"] and kind in {"string_pattern_mismatch", "string_type"}:
        return _RFC3339
    if kind == "string_pattern_mismatch":  # the other patterns: no NUL
        return "must not contain NUL (\\u0000) characters: PostgreSQL text cannot store them"
    if kind == "string_too_long" and isinstance(value, str):
        limit = (error.get("ctx") or {}).get("max_length")
        return f"is {len(value):,} characters long, over the maximum of {limit:,}"
    return error["msg"]


def _lookup(data: Any, path: list[str]) -> Any:
    for part in path:
        if isinstance(data, dict) and part in data:
            data = data[part]
        else:
            return None
    return data
