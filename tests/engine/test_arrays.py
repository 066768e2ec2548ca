"""The binary array encoder against PostgreSQL's own decoder: what goes in comes back out."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from worker.engine import arrays

Conn = psycopg.Connection[tuple[Any, ...]]

_TEXT = st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)))
_AWARE = st.datetimes(
    min_value=datetime(1, 1, 2),
    max_value=datetime(9999, 12, 30),
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8))]),
)
CASES: list[tuple[Callable[[Iterable[Any]], arrays.Array], str, st.SearchStrategy[Any]]] = [
    (arrays.text, "text[]", _TEXT),
    (arrays.int8, "int8[]", st.integers(-(2**63), 2**63 - 1)),
    (arrays.int4, "int4[]", st.integers(-(2**31), 2**31 - 1)),
    (arrays.boolean, "bool[]", st.booleans()),
    (arrays.timestamptz, "timestamptz[]", _AWARE),
    (arrays.dates, "date[]", st.dates()),
]


@pytest.fixture
def sender(conn: Conn) -> Conn:
    conn.autocommit = True
    arrays.register(conn.adapters)
    return conn


@pytest.mark.parametrize(("encode", "pg_type", "elements"), CASES, ids=[c[1] for c in CASES])
def test_round_trips_through_postgresql(
    sender: Conn,
    encode: Callable[[Iterable[Any]], arrays.Array],
    pg_type: str,
    elements: st.SearchStrategy[Any],
) -> None:
    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(values=st.lists(st.none() | elements, max_size=20))
    def check(values: list[Any]) -> None:
        row = sender.execute(f"SELECT %b::{pg_type}, pg_typeof(%b)::text", (encode(values), encode(values)))
        back, sent_as = row.fetchone()  # type: ignore[misc]
        assert back == values
        assert sent_as == pg_type.replace("int8", "bigint").replace("int4", "integer").replace(
            "bool", "boolean"
        ).replace("timestamptz", "timestamp with time zone")

    check()


def test_edges(sender: Conn) -> None:
    edges = [
        datetime(1, 1, 1, tzinfo=UTC),
        datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(2000, 1, 1, tzinfo=UTC),
        datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    ]
    assert sender.execute("SELECT %b::timestamptz[]", (arrays.timestamptz(edges),)).fetchone() == (edges,)
    days = [date(1, 1, 1), date(9999, 12, 31), date(2000, 1, 1), date(1999, 12, 31)]
    assert sender.execute("SELECT %b::date[]", (arrays.dates(days),)).fetchone() == (days,)
    assert sender.execute("SELECT %b::text[]", (arrays.text([]),)).fetchone() == ([],)
    assert sender.execute("SELECT %b::text[]", (arrays.text(["é€😀", ""]),)).fetchone() == (["é€😀", ""],)
