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


# The three column types of most values, as _encoder's, with the element's bytes made inline
# (a Python call per value was a third of the time).


def _text_array(values: Iterable[Any]) -> Array:
    parts = [b""]
    append = parts.append
    nulls = n = 0
    for value in values:
        n += 1
        if value is None:
            append(_NULL)
            nulls = 1
        else:
            data = value.encode()
            append(_LENGTH(len(data)))
            append(data)
    if not n:
        return Array(_EMPTY.pack(0, 0, 25), 1009)
    parts[0] = _HEADER.pack(1, nulls, 25, n, 1)
    return Array(b"".join(parts), 1009)


def _int8_array(values: Iterable[Any]) -> Array:
    parts = [b""]
    append = parts.append
    nulls = 0
    for value in values:
        if value is None:
            append(_NULL)
            nulls = 1
        else:
            append(_INT8(8, value))
    if len(parts) == 1:
        return Array(_EMPTY.pack(0, 0, 20), 1016)
    parts[0] = _HEADER.pack(1, nulls, 20, len(parts) - 1, 1)
    return Array(b"".join(parts), 1016)


def _timestamptz_array(values: Iterable[Any]) -> Array:
    parts = [b""]
    append = parts.append
    nulls = 0
    for value in values:
        if value is None:
            append(_NULL)
            nulls = 1
        else:
            append(_INT8(8, (value - _PG_EPOCH) // _MICROSECOND))
    if len(parts) == 1:
        return Array(_EMPTY.pack(0, 0, 1184), 1185)
    parts[0] = _HEADER.pack(1, nulls, 1184, len(parts) - 1, 1)
    return Array(b"".join(parts), 1185)


def _int4(value: int) -> bytes:
    return _INT4(4, value)


def _bool(value: bool) -> bytes:
    return _TRUE if value else _FALSE


def _date(value: date) -> bytes:
    return _INT4(4, value.toordinal() - _PG_EPOCH_DAY)


text = _text_array
int8 = _int8_array
int4 = _encoder(23, 1007, _int4)
boolean = _encoder(16, 1000, _bool)
timestamptz = _timestamptz_array
dates = _encoder(1082, 1182, _date)
