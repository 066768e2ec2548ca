"""The API's date parameter: a calendar date written exactly ``YYYY-MM-DD``, nothing else.

pydantic's lax ``date`` also takes ``0``, ``86400``, ``0.0`` and ``2026-12-01T00:00:00``; this type
takes only the ISO calendar form, years 0001-9999, and its OpenAPI says so (format and pattern).
"""

from __future__ import annotations

from datetime import date
from typing import Annotated

from pydantic import GetPydanticSchema, WithJsonSchema
from pydantic_core import core_schema

_YEAR = r"(?:[0-9]{3}[1-9]|[0-9]{2}[1-9][0-9]|[0-9][1-9][0-9]{2}|[1-9][0-9]{3})"  # 0001-9999
PATTERN = "^" + _YEAR + r"-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])$"

_SCHEMA = core_schema.custom_error_schema(
    core_schema.chain_schema([core_schema.str_schema(pattern=PATTERN), core_schema.date_schema()]),
    custom_error_type="date_format",
    custom_error_message="Input should be a valid date written YYYY-MM-DD, e.g. 2026-12-01",
)

#: ``Annotated[IsoDate | None, Query(...)]`` in a route: a 422 naming the parameter for anything else.
IsoDate = Annotated[
    date,
    GetPydanticSchema(lambda _tp, _handler: _SCHEMA),
    WithJsonSchema({"type": "string", "format": "date", "pattern": PATTERN}),
]
