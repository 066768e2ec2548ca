"""What every read shares: the error for caller mistakes, filter checks, connections, the fallback
from the roll-ups to the base tables, durations, token usage."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeAlias

import numpy as np
import psycopg
from numpy.typing import NDArray
from psycopg.adapt import Loader
from psycopg.pq import Format
from psycopg.rows import DictRow, dict_row
from psycopg_pool import ConnectionPool

from contract.fields import unstorable
from worker.read.models import TokenUsage

#: PostgreSQL's oid of int4[] (pg_type: _int4).
INT4_ARRAY_OID = 1007


class CountsLoader(Loader):
    """A binary int4[] of counts as a numpy int32 array, without a Python int per element (the
    latency reads sum a few hundred arrays of 150-440 counts: histogram.merge_dense). The binary
    form: ndim, has-nulls flag, element oid, then per dimension its size and lower bound, then per
    element its length (4) and its value, big-endian. Counts are one-dimensional and never NULL."""

    format = Format.BINARY

    def load(self, data: Any) -> Any:
        head = np.frombuffer(data, dtype=">i4", count=3)
        if head[0] == 0:
            return np.zeros(0, dtype=np.int32)
        if head[0] != 1 or head[1] != 0:
            raise ValueError(
                f"counts array: one dimension and no NULLs expected, got {head[0]} and {head[1]}"
            )
        return np.frombuffer(data, dtype=">i4", offset=20)[1::2].astype(np.int32)


def sum_packed(
    los: Any,
    sizes: Any,
    packed: bytes | None,
    raw_los: Any = None,
    raw_sizes: Any = None,
    raw: bytes | None = None,
) -> tuple[int, NDArray[np.int64]]:
    """Dense histograms summed into one, as histogram.sum_dense sums ``(lo, counts)`` rows, from one
    row that packs a key's arrays (the latency reads of hours: one row per name, not per hour):
    ``los[k]`` and ``sizes[k]``, the k-th array's first bucket and length, and ``packed``, their
    elements one after another as int4[]'s binary form sends them (``substring(array_send(counts)
    FROM 21)``: the 20-byte header cut, then per element its length, 4, and its value, big-endian);
    ``raw_los``, ``raw_sizes`` and ``raw`` more arrays, their elements 4-byte big-endian values
    without lengths (schema.sql: latency_hourly.raw, compacted hours). The server writes the
    elements once, the client reads them without a Python step per array: every element's bucket
    laid out at once and added in one numpy call. No arrays (NULLs, as array_agg and string_agg
    give for none) or only empty ones: ``(0, [])``, as sum_dense."""
    starts = np.asarray(los if los is not None else [], dtype=np.int64)
    lengths = np.asarray(sizes if sizes is not None else [], dtype=np.int64)
    words = np.frombuffer(packed if packed is not None else b"", dtype=">i4")
    if len(starts) != len(lengths) or len(words) != 2 * int(lengths.sum()) or (words[0::2] != 4).any():
        raise ValueError(
            f"packed counts: {len(lengths)} sizes summing to {int(lengths.sum())} for {len(starts)} arrays "
            f"and {len(words) // 2} elements, {int((words[0::2] != 4).sum())} of them not 4 bytes (NULL?)"
        )
    values = words[1::2]
    if raw_los is not None or raw_sizes is not None or raw is not None:
        raw_starts = np.asarray(raw_los if raw_los is not None else [], dtype=np.int64)
        raw_lengths = np.asarray(raw_sizes if raw_sizes is not None else [], dtype=np.int64)
        raw_values = np.frombuffer(raw if raw is not None else b"", dtype=">i4")
        if len(raw_starts) != len(raw_lengths) or len(raw_values) != int(raw_lengths.sum()):
            raise ValueError(
                f"raw counts: {len(raw_lengths)} sizes summing to {int(raw_lengths.sum())} for "
                f"{len(raw_starts)} arrays and {len(raw_values)} elements"
            )
        starts, lengths = np.concatenate([starts, raw_starts]), np.concatenate([lengths, raw_lengths])
        values = np.concatenate([values, raw_values])
    kept = lengths > 0
    if not kept.any():
        return 0, np.zeros(0, dtype=np.int64)
    first = int(starts[kept].min())
    total = np.zeros(int((starts + lengths)[kept].max()) - first, dtype=np.int64)
    # where each array's elements begin in ``values``, and so each element's place in ``total``
    offsets = np.cumsum(lengths) - lengths
    np.add.at(
        total, np.arange(len(values)) + np.repeat(starts - first - offsets, lengths), values.astype(np.int64)
    )
    return first, total


#: A connection, or a pool to borrow one from for the length of one read.
Source: TypeAlias = "psycopg.Connection[Any] | ConnectionPool[Any]"

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
DEFAULT_DAYS = 7
MAX_DAYS = 3660
DEFAULT_HOURS = 24
MAX_HOURS = 168

_ONE_MS = timedelta(milliseconds=1)


class QueryError(ValueError):
    """A caller's mistake in the filters (not a database failure). ``param`` names the filter."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


def check_text(param: str, value: str | None) -> None:
    """A text filter PostgreSQL can compare: no NUL (text cannot hold it), encodable as UTF-8."""
    if value is None:
        return
    reason = unstorable(value)
    if reason is not None:
        raise QueryError(f"{param} {value!r} {reason}, so no stored value can match it", param)


def check_date_range(start_date: date | None, end_date: date | None) -> None:
    if start_date is not None and end_date is not None and end_date < start_date:
        raise QueryError(
            f"end_date {end_date.isoformat()} is before start_date {start_date.isoformat()}; "
            "both are inclusive UTC dates, pass an end_date on or after the start_date",
            param="end_date",
        )


def resolve_limit(limit: int | None) -> int:
    """The seed's paging: 100 by default; above 1000 is clamped to 1000 (the API refuses it instead)."""
    if limit is None:
        return DEFAULT_LIMIT
    if limit < 1:
        raise QueryError(f"limit must be between 1 and {MAX_LIMIT}, got {limit}", param="limit")
    return min(limit, MAX_LIMIT)


def daily_window(days: int, end_date: date | None) -> tuple[date, date]:
    """The inclusive UTC dates covered by ``days`` days ending on ``end_date`` (default: today, UTC).

    ``days=0`` means one day, like the seed's ``days.max(1)``; negative or more than MAX_DAYS
    is a QueryError.
    """
    if days < 0 or days > MAX_DAYS:
        raise QueryError(f"days must be between 1 and {MAX_DAYS}, got {days}", param="days")
    end = end_date if end_date is not None else datetime.now(UTC).date()
    try:
        start = end - timedelta(days=max(days, 1) - 1)
    except OverflowError:
        raise QueryError(
            f"{days} days before end_date {end.isoformat()} is before year 1", param="days"
        ) from None
    return start, end


def hours_window(hours: int, now: datetime | None = None) -> tuple[datetime, datetime]:
    """``[start, end)`` of the last ``hours`` UTC hours: the hour ``now`` is in (default: the
    current one, so far) and the ``hours - 1`` whole hours before it, on hour boundaries (what the
    hourly roll-ups are keyed by). Outside 1..MAX_HOURS is a QueryError."""
    if not 1 <= hours <= MAX_HOURS:
        raise QueryError(f"hours must be between 1 and {MAX_HOURS}, got {hours}", param="hours")
    current = (now if now is not None else datetime.now(UTC)).astimezone(UTC)
    end = current.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    return end - timedelta(hours=hours), end


def hours_instead_of_dates(
    hours: int | None, start_date: date | None, end_date: date | None, now: datetime | None = None
) -> tuple[datetime, datetime] | None:
    """``[start, end)`` of the last ``hours`` (hours_window), or None without ``hours``; ``hours``
    with a date is a QueryError naming both (a read takes a window of hours or of dates)."""
    if hours is None:
        return None
    for param, value in (("start_date", start_date), ("end_date", end_date)):
        if value is not None:
            raise QueryError(
                f"hours={hours} and {param}={value.isoformat()}: give the last N hours or a date range, "
                "not both",
                param="hours",
            )
    return hours_window(hours, now)


def date_span(start_date: date | None, end_date: date | None) -> tuple[datetime | None, datetime | None]:
    """``[start, end)`` of inclusive UTC dates as instants (None: open)."""
    check_date_range(start_date, end_date)
    start = datetime.combine(start_date, datetime.min.time(), UTC) if start_date is not None else None
    end = None
    if end_date is not None and end_date < date.max:
        end = datetime.combine(end_date + timedelta(days=1), datetime.min.time(), UTC)
    return start, end


def duration_ms(started_at: datetime | None, completed_at: datetime | None) -> int | None:
    """Whole milliseconds from start to completion; None when either is missing or it is negative."""
    if started_at is None or completed_at is None or completed_at < started_at:
        return None
    return (completed_at - started_at) // _ONE_MS


def token_usage(row: dict[str, Any]) -> TokenUsage:
    """The row's prompt_tokens, completion_tokens and total_tokens."""
    return TokenUsage(
        prompt_tokens=row["prompt_tokens"],
        completion_tokens=row["completion_tokens"],
        total_tokens=row["total_tokens"],
    )


def fetch_all(
    conn: psycopg.Connection[Any],
    sql: str,
    params: dict[str, Any],
    *,
    binary: bool = False,
    counts_as_numpy: bool = False,
) -> list[DictRow]:
    """Run one read. Never server-prepared: every execution is planned with its own values, so
    ``(%(x)s IS NULL OR col = %(x)s)`` folds to ``col = 'value'`` and can use the index on col
    (a cached generic plan could not). ``binary``: results in PostgreSQL's binary format (arrays
    of counts load in a third less time than from text). ``counts_as_numpy`` (with ``binary``):
    int4[] columns load as numpy arrays (CountsLoader), on this cursor only."""
    with conn.cursor(row_factory=dict_row, binary=binary) as cur:
        if counts_as_numpy:
            cur.adapters.register_loader(INT4_ARRAY_OID, CountsLoader)
        cur.execute(sql, params, prepare=False)
        return cur.fetchall()


@contextmanager
def borrowed(source: Source) -> Iterator[psycopg.Connection[Any]]:
    """The connection itself, or one borrowed from the pool for this read."""
    if isinstance(source, ConnectionPool):
        with source.connection() as conn:
            yield conn
    else:
        yield source


@contextmanager
def snapshot(source: Source) -> Iterator[psycopg.Connection[Any]]:
    """One transaction around a read of several statements.

    The statements see one snapshot when the connection's isolation_level is REPEATABLE READ
    (the API's pool sets it); under READ COMMITTED each sees the latest commits.
    """
    with borrowed(source) as conn, conn.transaction():
        yield conn


def rollup_or_base(
    conn: psycopg.Connection[Any],
    from_rollup: str,
    from_base: str,
    params: dict[str, Any],
    key: str,
    *,
    binary: bool = False,
    counts_as_numpy: bool = False,
) -> list[DictRow]:
    """The rows of an aggregate read: from its statement over the roll-ups, whose first column
    ``rollups_ready`` says whether they count every row, or, while a back-fill is due, from its
    twin over the base tables (a second statement). ``key``: a column no answer row has NULL (the
    roll-up statement returns one row of NULLs when it has no answer rows, or is not ready)."""
    rows = fetch_all(conn, from_rollup, params, binary=binary, counts_as_numpy=counts_as_numpy)
    if rows and rows[0]["rollups_ready"]:
        return [row for row in rows if row[key] is not None]
    return fetch_all(conn, from_base, params, binary=binary, counts_as_numpy=counts_as_numpy)
