"""One-dimensional PostgreSQL arrays in binary wire format, built once per batch column.

The apply engine sends every batch as columns (one array per column, unnested server-side).
psycopg's generic list dumper inspects each list to choose an element type (scanning whole
integer lists for their largest value) and dumps a list again for every statement that uses it;
the round and tool-call columns go to two statements. Here the element type is known from the
column, and a column is encoded once into an :class:`Array` that psycopg sends as it is.

Wire format (PostgreSQL's array_recv): ndim, has-nulls flag, element type oid, then per
dimension its length and lower bound, then per element its byte length (-1 for NULL) and bytes.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Any

from psycopg.adapt import AdaptersMap, Dumper
from psycopg.pq import Format

_HEADER = struct.Struct(">iiiii")
_EMPTY = struct.Struct(">iii")
_LENGTH = struct.Struct(">i").pack
_NULL = _LENGTH(-1)
_INT8 = struct.Struct(">iq").pack
_INT4 = struct.Struct(">ii").pack
_TRUE, _FALSE = _LENGTH(1) + b"\x01", _LENGTH(1) + b"\x00"
_PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_PG_EPOCH_DAY = date(2000, 1, 1).toordinal()
_MICROSECOND = timedelta(microseconds=1)


class Array:
    """A binary-encoded one-dimensional array and its PostgreSQL type, ready to send."""

    __slots__ = ("data", "oid")

    def __init__(self, data: bytes, oid: int) -> None:
        self.data = data
        self.oid = oid


class _ArrayDumper(Dumper):
    format = Format.BINARY

    def dump(self, obj: Any) -> bytes:
        return obj.data  # type: ignore[no-any-return]

    def upgrade(self, obj: Any, format: Any) -> Dumper:
        dumper = type(self)(type(obj))
        dumper.oid = obj.oid
        return dumper

    def get_key(self, obj: Any, format: Any) -> Any:
        return (Array, obj.oid)


def register(adapters: AdaptersMap) -> None:
    """Let psycopg send :class:`Array` values (on a connection's or the global adapters)."""
    adapters.register_dumper(Array, _ArrayDumper)


def _encoder(
    element_oid: int, array_oid: int, element: Callable[[Any], bytes]
) -> Callable[[Iterable[Any]], Array]:
    def encode(values: Iterable[Any]) -> Array:
        parts = [b""]
        nulls = 0
        for value in values:
            if value is None:
                parts.append(_NULL)
                nulls = 1
            else:
                parts.append(element(value))
        if len(parts) == 1:
            return Array(_EMPTY.pack(0, 0, element_oid), array_oid)
        parts[0] = _HEADER.pack(1, nulls, element_oid, len(parts) - 1, 1)
        return Array(b"".join(parts), array_oid)

    return encode


def _text(value: str) -> bytes:
    data = value.encode()
    return _LENGTH(len(data)) + data


def _int8(value: int) -> bytes:
    return _INT8(8, value)


def _int4(value: int) -> bytes:
    return _INT4(4, value)


def _bool(value: bool) -> bytes:
    return _TRUE if value else _FALSE


def _timestamptz(value: datetime) -> bytes:
    return _INT8(8, (value - _PG_EPOCH) // _MICROSECOND)


def _date(value: date) -> bytes:
    return _INT4(4, value.toordinal() - _PG_EPOCH_DAY)


text = _encoder(25, 1009, _text)
int8 = _encoder(20, 1016, _int8)
int4 = _encoder(23, 1007, _int4)
boolean = _encoder(16, 1000, _bool)
timestamptz = _encoder(1184, 1185, _timestamptz)
dates = _encoder(1082, 1182, _date)
