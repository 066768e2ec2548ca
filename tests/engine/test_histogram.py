"""Bucket percentiles are within the documented error of PostgreSQL's over the raw values; SQL = Python."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from worker.engine import histogram
from worker.engine.histogram import GAMMA, MAX_INDEX, MIN_INDEX, RELATIVE_ERROR, ZERO, bucket, value

Conn = psycopg.Connection[tuple[Any, ...]]
SLACK = 1e-12  # float rounding of the bound itself
_IN_RANGE = st.floats(min_value=histogram.MIN_MS * 1.0001, max_value=histogram.MAX_MS * 0.9999)
# Durations as they come: integer milliseconds, fractions, zero, and values piled near one another.
_DURATIONS = st.lists(
    st.one_of(st.integers(0, 10**7).map(float), st.floats(0, 1e6), st.sampled_from([0.0, 1.0, 100.0, 100.5])),
    min_size=1,
    max_size=300,
)
_QS = [0.0, 0.01, 0.25, 0.5, 0.9, 0.95, 0.99, 1.0]


@pytest.fixture
def sql(conn: Conn) -> Conn:
    conn.execute(histogram.BUCKET_FUNCTION_SQL)
    return conn


@given(ms=_IN_RANGE)
def test_a_buckets_value_is_within_the_relative_error_of_every_duration_in_it(ms: float) -> None:
    index = bucket(ms)
    assert abs(value(index) - ms) <= (RELATIVE_ERROR + SLACK) * ms
    lower, upper = histogram.bounds(index)
    assert lower * (1 - SLACK) <= ms <= upper * (1 + SLACK)


def test_the_edges_zero_tiny_huge_and_nan() -> None:
    assert (bucket(0), bucket(-5), value(ZERO)) == (ZERO, ZERO, 0.0)
    assert bucket(1e-300) == bucket(histogram.MIN_MS) == MIN_INDEX
    assert bucket(math.inf) == bucket(1e300) == bucket(histogram.MAX_MS) == MAX_INDEX
    assert (bucket(1), bucket(1.0001), bucket(2), bucket(1000)) == (0, 1, 32, math.ceil(math.log2(1000) * 32))
    with pytest.raises(ValueError, match="NaN"):
        bucket(math.nan)
    assert histogram.SCALE == 5 and GAMMA == 2 ** (1 / 32)
    assert 2**histogram.SCALE / math.log(2) == histogram.K  # the literal in the SQL is this double
    assert f"ln(ms) * {histogram.K!r}::float8" in histogram.BUCKET_FUNCTION_SQL


def _boundaries() -> list[float]:
    """Every bucket bound, the doubles on either side of it, and the edges."""
    values = [0.0, -1.0, 5e-324, 1e-300, 1.0, 2.0, 1e300, math.inf, histogram.MIN_MS, histogram.MAX_MS]
    for i in range(MIN_INDEX - 2, MAX_INDEX + 3):
        x = GAMMA**i
        values += [x, math.nextafter(x, 0), math.nextafter(x, math.inf), 2 ** (i / 32)]
    return values


def _sql_buckets(conn: Conn, values: list[float]) -> list[int | None]:
    rows = conn.execute(
        "SELECT metrics_latency_bucket(v) FROM unnest(%s::float8[]) WITH ORDINALITY AS t(v, n) ORDER BY n",
        (values,),
    ).fetchall()
    return [row[0] for row in rows]


def test_sql_and_python_agree_at_every_bucket_boundary(sql: Conn) -> None:
    values = _boundaries()
    assert _sql_buckets(sql, values) == [bucket(v) for v in values]
    assert sql.execute("SELECT metrics_latency_bucket('NaN'), metrics_latency_bucket(NULL)").fetchone() == (
        None,
        None,
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.lists(st.floats(min_value=0, allow_nan=False), min_size=1, max_size=200))
def test_sql_and_python_agree_for_any_durations(sql: Conn, values: list[float]) -> None:
    assert _sql_buckets(sql, values) == [bucket(v) for v in values]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=_DURATIONS)
def test_percentiles_from_buckets_are_postgresqls_within_the_relative_error(
    conn: Conn, values: list[float]
) -> None:
    """percentile_disc's answer lies in the bucket chosen (exactly); percentile_cont lies between the
    same neighbouring samples, so it is within the error plus the gap between those two."""
    got = histogram.percentiles(histogram.tally(values), _QS)
    for q in _QS:
        row = conn.execute(
            "SELECT percentile_disc(%(q)s) WITHIN GROUP (ORDER BY v), percentile_cont(%(q)s) WITHIN GROUP"
            " (ORDER BY v) FROM unnest(%(v)s::float8[]) v",
            {"q": q, "v": values},
        ).fetchone()
        assert row is not None
        disc, cont = row
        estimate = got[q]
        assert estimate is not None
        assert bucket(disc) == bucket(estimate), (q, disc, estimate)
        if not (disc == 0 or histogram.MIN_MS < disc < histogram.MAX_MS):
            continue  # clamped into the edge buckets, as documented
        assert abs(estimate - disc) <= (RELATIVE_ERROR + SLACK) * disc
        ranked = sorted(values)
        lo = ranked[math.floor(q * (len(values) - 1))]
        hi = ranked[math.ceil(q * (len(values) - 1))]
        assert lo <= cont <= hi and lo <= disc <= hi
        assert lo * (1 - RELATIVE_ERROR - SLACK) <= estimate <= hi * (1 + RELATIVE_ERROR + SLACK)


@given(a=_DURATIONS, b=_DURATIONS)
def test_merged_bucket_counts_are_the_counts_of_the_concatenation(a: list[float], b: list[float]) -> None:
    merged = histogram.merge(histogram.tally(a), histogram.tally(b))
    assert merged == histogram.tally(a + b)
    assert histogram.percentiles(merged) == histogram.percentiles(histogram.tally(a + b))
    assert sum(merged.values()) == len(a) + len(b)


def test_empty_and_bad_inputs() -> None:
    assert histogram.percentiles({}) == {0.5: None, 0.9: None, 0.95: None, 0.99: None}
    assert histogram.percentiles({3: 0}) == dict.fromkeys(histogram.QUANTILES)
    assert histogram.percentiles({ZERO: 5}, [0.5]) == {0.5: 0.0}
    with pytest.raises(ValueError, match="negative"):
        histogram.percentiles({3: -1})
    with pytest.raises(ValueError, match="between 0 and 1"):
        histogram.percentiles({3: 1}, [95])


def test_the_schema_creates_the_same_bucket_function() -> None:
    from worker.schema import schema_path

    assert histogram.BUCKET_FUNCTION_SQL + ";" in schema_path().read_text()


# Dense histograms as the roll-ups keep them (schema.sql: lo, counts): any first bucket, counts of
# either sign (a slot's deltas), empty arrays left out (a row always has a count).
_DENSE = st.tuples(
    st.integers(ZERO, MAX_INDEX - 40), st.lists(st.integers(-(2**20), 2**20), min_size=1, max_size=40)
)


def _as_dict(lo: int, counts: list[int]) -> dict[int, int]:
    return {lo + k: n for k, n in enumerate(counts) if n}


@given(rows=st.lists(_DENSE, max_size=8))
def test_dense_histograms_sum_as_their_bucket_counts_do(rows: list[tuple[int, list[int]]]) -> None:
    assert histogram.merge_dense(rows) == histogram.merge(*(_as_dict(lo, c) for lo, c in rows))


# Non-negative counts of one span (what the latency read sums), as lists or as the int32 arrays
# the read loads them into (worker/read/queries/_base.py's CountsLoader).
_SPAN_DENSE = st.tuples(
    st.integers(MIN_INDEX, MAX_INDEX - 40), st.lists(st.integers(0, 2**20), min_size=0, max_size=40)
)


@given(rows=st.lists(_SPAN_DENSE, max_size=8), as_numpy=st.booleans())
def test_percentiles_of_the_dense_sum_are_those_of_its_bucket_counts(
    rows: list[tuple[int, list[int]]], as_numpy: bool
) -> None:
    loaded = [(lo, np.array(c, dtype=np.int32) if as_numpy else c) for lo, c in rows]
    first, total = histogram.sum_dense(loaded)
    counts = histogram.merge_dense(loaded)
    assert int(total.sum()) == sum(counts.values())
    assert histogram.percentiles_dense(first, total) == histogram.percentiles(counts)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(a=_DENSE, b=_DENSE)
def test_the_sql_sum_of_two_dense_histograms_is_theirs(
    conn: Conn, a: tuple[int, list[int]], b: tuple[int, list[int]]
) -> None:
    row = conn.execute(
        "SELECT LEAST(%(la)s, %(lb)s), metrics_histogram_add(%(la)s, %(a)s::int[], %(lb)s, %(b)s::int[])",
        {"la": a[0], "a": a[1], "lb": b[0], "b": b[1]},
    ).fetchone()
    assert row is not None
    lo, counts = row
    assert len(counts) == max(a[0] + len(a[1]), b[0] + len(b[1])) - lo  # dense from the least lo, no more
    assert _as_dict(lo, counts) == histogram.merge(_as_dict(*a), _as_dict(*b))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    deltas=st.dictionaries(st.integers(ZERO, MAX_INDEX), st.integers(-1000, 1000).filter(bool), min_size=1)
)
def test_a_statements_deltas_make_the_dense_histogram_of_their_buckets(
    conn: Conn, deltas: dict[int, int]
) -> None:
    row = conn.execute(
        "SELECT metrics_histogram(%(lo)s, %(hi)s, %(b)s::int[], %(n)s::int[])",
        {"lo": min(deltas), "hi": max(deltas), "b": list(deltas), "n": list(deltas.values())},
    ).fetchone()
    assert row is not None
    assert len(row[0]) == max(deltas) - min(deltas) + 1
    assert _as_dict(min(deltas), row[0]) == deltas
