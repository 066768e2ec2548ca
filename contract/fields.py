"""The field types of the wire contract, each validated in pydantic-core (no Python callback on the
hot path) and published with exactly the JSON Schema it enforces.

- Integers: a JSON number with a zero fraction (``3.0``, ``1e2``) is an integer, as JSON Schema
  says; ``3.5``, ``"3"`` and ``true`` are not.
- Timestamps: RFC 3339 exactly (``T`` or ``t``, any fraction digits, kept to the microsecond,
  ``Z``/``z`` or ``±HH:MM``), whose instant in UTC lies in years 0001-9999
  (:data:`EARLIEST` to :data:`LATEST`). A leap second (``:60``) reads as ``:59.999999``, the last
  instant Python and PostgreSQL can tell before the next minute.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

from pydantic import GetPydanticSchema, WithJsonSchema
from pydantic_core import PydanticCustomError, core_schema

BIGINT_MAX = 2**63 - 1
MAX_ID_LENGTH = 128
MAX_NAME_LENGTH = 256
MAX_ERROR_LENGTH = 16_384
#: Entries larger than this are dead-lettered unparsed (workers: METRICS_MAX_EVENT_BYTES).
DEFAULT_MAX_EVENT_BYTES = 1_048_576

EARLIEST = "0001-01-01T00:00:00Z"
LATEST = "9999-12-31T23:59:59.999999Z"


def unstorable(value: str) -> str | None:
    """Why PostgreSQL text cannot hold ``value`` (a NUL character; not valid UTF-8, such as the
    unpaired surrogates os.fsdecode() makes of undecodable bytes), or None when it can. The one
    rule behind the producer's argument checks and the read side's filters."""
    if "\x00" in value:
        return "contains a NUL character, which PostgreSQL text cannot hold"
    if value.isascii():
        return None
    try:
        value.encode()
    except UnicodeEncodeError:
        return "is not valid UTF-8 text"
    return None


_YEAR = r"(?:[0-9]{3}[1-9]|[0-9]{2}[1-9][0-9]|[0-9][1-9][0-9]{2}|[1-9][0-9]{3})"  # 0001-9999
_DATE = _YEAR + r"-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])"
_OFFSET = r"(?:[Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
#: RFC 3339 date-time syntax (section 5.6). Days beyond a month's end are refused by the parser.
RFC3339 = "^" + _DATE + r"[Tt](?:[01][0-9]|2[0-3]):[0-5][0-9]:(?:[0-5][0-9]|60)(?:\.[0-9]+)?" + _OFFSET + "$"
#: Union members are labelled in brackets, so error locations can drop them (contract.codec).
UNION_LABEL = "["
_LEAP = re.compile(r":60(?:\.[0-9]+)?(?=[Zz+-])")


class Integer:
    """Annotated metadata: an int from ``ge`` to ``le``, where a JSON number with a zero fraction
    counts (JSON Schema's rule). ``Annotated[int, Integer(0, 10)]``."""

    def __init__(self, ge: int, le: int) -> None:
        exact = core_schema.int_schema(strict=True, ge=ge, le=le)
        whole = core_schema.chain_schema(
            [core_schema.float_schema(strict=True), core_schema.int_schema(ge=ge, le=le)]
        )
        self.core = core_schema.union_schema([(exact, "[int]"), (whole, "[whole]")], mode="left_to_right")
        self.json = {"type": "integer", "minimum": ge, "maximum": le}

    def __get_pydantic_core_schema__(self, _source: Any, _handler: Any) -> core_schema.CoreSchema:
        return self.core

    def __get_pydantic_json_schema__(self, _core: Any, _handler: Any) -> dict[str, Any]:
        return dict(self.json)


def _leap_second(text: str) -> datetime:
    """A timestamp whose second is 60 (RFC 3339 allows it), as the last microsecond of its minute."""
    fixed = _LEAP.sub(":59.999999", text, count=1)
    if fixed == text:  # not a leap second: the parser's own error is the first one reported
        raise PydanticCustomError("datetime_parsing", "Input should be a valid datetime")
    return datetime.fromisoformat(fixed.upper())


_FROM_TEXT = core_schema.chain_schema(
    [
        core_schema.str_schema(pattern=RFC3339),
        core_schema.union_schema(
            [
                (core_schema.datetime_schema(tz_constraint="aware"), "[datetime]"),
                (core_schema.no_info_plain_validator_function(_leap_second), "[leap second]"),
            ],
            mode="left_to_right",
        ),
    ]
)
_TIMESTAMP = core_schema.json_or_python_schema(
    json_schema=_FROM_TEXT,
    python_schema=core_schema.union_schema(  # models built in Python take an aware datetime too
        [
            (core_schema.datetime_schema(strict=True, tz_constraint="aware"), "[datetime]"),
            (_FROM_TEXT, "[text]"),
        ],
        mode="left_to_right",
    ),
    serialization=core_schema.simple_ser_schema("datetime"),
)

#: Converted to UTC by contract.codec (decode, validate): a Python callback per event costs a third
#: of pydantic's validation time on the worker's hot path.
Timestamp = Annotated[
    datetime,
    GetPydanticSchema(lambda _tp, _handler: _TIMESTAMP),
    WithJsonSchema(
        {
            "type": "string",
            "format": "date-time",
            "pattern": RFC3339,
            # formatMinimum/formatMaximum: the ajv-formats keywords; validators without them see the
            # range in the description.
            "formatMinimum": EARLIEST,
            "formatMaximum": LATEST,
            "description": (
                "RFC 3339 date-time with an offset (Z or ±HH:MM); any number of fraction digits, "
                f"kept to the microsecond; its instant in UTC from {EARLIEST} to {LATEST}."
            ),
        }
    ),
]
