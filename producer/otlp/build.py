"""The contract's events from what the mapping read off a span: times made datetimes, each event
validated by its own type's validator, and a contract refusal turned into a
:class:`~producer.otlp.attributes.Refused` that names the span attribute behind the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError

from contract import codec
from contract.events import EVENT_TYPES, Event
from producer.otlp.attributes import Refused
from producer.otlp.spans import Span

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_FLOAT_EXACT = 2**52
_from_timestamp = datetime.fromtimestamp

#: Each event type's own validator: a quarter cheaper than the union's, and the times built here
#: are in UTC already (contract.codec.validate converts others). Its errors are explained by
#: contract.codec.validate, on that path only.
_VALIDATORS = {cls.model_fields["type"].default: cls.__pydantic_validator__ for cls in EVENT_TYPES}


def at(ns: int) -> datetime:
    """Unix nanoseconds -> a UTC datetime, cut to the microsecond. Through a float below 2**52
    microseconds (year 2112), where that is exact and twice as fast."""
    us = ns // 1000
    if us < _FLOAT_EXACT:
        return _from_timestamp(us / 1e6, UTC)
    return _EPOCH + timedelta(microseconds=us)


def check_times(span: Span) -> None:
    """A span that makes events starts after 1970 and ends no earlier than it starts."""
    if span.start_ns <= 0:
        raise Refused("start_time_unix_nano", f"must be a time after 1970, not {span.start_ns}")
    if span.end_ns < span.start_ns:
        raise Refused(
            "end_time_unix_nano", f"is before start_time_unix_nano ({span.end_ns} < {span.start_ns})"
        )


def validate(data: dict[str, Any], sources: Mapping[str, str]) -> Event:
    """The event ``data`` describes; a contract refusal names the span attribute behind the field
    (``sources``: contract field -> attribute)."""
    try:
        event: Event = _VALIDATORS[data["type"]].validate_python(data)
        return event
    except ValidationError:
        pass
    try:
        return codec.validate(data)
    except codec.ContractError as err:
        top = err.field.split(".", 1)[0]
        field = sources.get(err.field) or sources.get(top) or err.field
        reason = str(err)  # "<contract field>: <reason> (got <value>)", the contract's own words
        if field == err.field:
            reason = reason.removeprefix(f"{field}: ")
        raise Refused(field, reason) from None
