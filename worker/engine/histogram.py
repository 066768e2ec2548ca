"""Latency histograms with fixed logarithmic buckets: any range's percentiles from summed bucket counts.

The bucket rule (OpenTelemetry's exponential histogram at scale 5, DDSketch's mapping):

- base ``GAMMA = 2 ** (1/32)`` (32 buckets per doubling); a duration ``ms > 0`` goes to bucket
  ``i = ceil(ln(ms) * K)`` with ``K = 32 / ln 2`` written as the literal ``46.16624130844683`` in both
  Python and SQL, so bucket ``i`` holds ``GAMMA**(i-1) < ms <= GAMMA**i`` (a value within a rounding
  step of a bound may fall on either side of it: Python and SQL agree because they compute the same
  expression with the same C ``log``);
- its representative value is ``2 * GAMMA**i / (GAMMA + 1)``, within ``RELATIVE_ERROR = (GAMMA - 1) /
  (GAMMA + 1) = 1.0830%`` of every value in the bucket;
- ``ms <= 0`` goes to bucket ``ZERO = -321`` (value 0, exact; just below the smallest positive
  bucket, so that every bucket is an integer of ``-321..1280`` and a histogram is a dense array of
  counts); ``0 < ms <= 2**-10`` (under a microsecond) to ``MIN_INDEX = -320``; ``ms >= 2**40``
  (35 years, and infinity) to ``MAX_INDEX = 1280``; the error bound holds between those two; NaN
  is refused (``ValueError``; SQL gives NULL).

Percentiles follow PostgreSQL's ``percentile_disc``: of ``n`` counted values, the ``q`` percentile is
the ``k``-th smallest with ``k = max(1, ceil(q * n))`` (the float product, as PostgreSQL computes it),
so the bucket answer is the representative of the bucket that holds ``percentile_disc``'s answer:
within ``RELATIVE_ERROR`` of it. ``percentile_cont`` interpolates between the k-th and a neighbour.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

SCALE = 5
GAMMA = 2.0 ** (2.0**-SCALE)
RELATIVE_ERROR = (GAMMA - 1) / (GAMMA + 1)
K = 46.16624130844683  # 2**SCALE / ln 2; the same digits are in BUCKET_FUNCTION_SQL
MIN_MS, MIN_INDEX = 2.0**-10, -(10 << SCALE)
ZERO = MIN_INDEX - 1
MAX_MS, MAX_INDEX = 2.0**40, 40 << SCALE
QUANTILES = (0.5, 0.9, 0.95, 0.99)

# The same rule for PostgreSQL (the schema includes it; tests/engine/test_histogram.py holds them equal).
BUCKET_FUNCTION_SQL = """\
CREATE OR REPLACE FUNCTION metrics_latency_bucket(ms double precision) RETURNS int
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN ms = 'NaN' THEN NULL
        WHEN ms <= 0 THEN -321
        WHEN ms >= 1099511627776 THEN 1280
        WHEN ms <= 0.0009765625 THEN -320
        ELSE ceil(ln(ms) * 46.16624130844683::float8)::int
    END
$$"""


def bucket(ms: float) -> int:
    """The bucket of a duration in milliseconds (the rule in the module docstring)."""
    ms = float(ms)
    if math.isnan(ms):
        raise ValueError("a duration of NaN milliseconds has no bucket")
    if ms <= 0:
        return ZERO
    if ms >= MAX_MS:
        return MAX_INDEX
    if ms <= MIN_MS:
        return MIN_INDEX
    return math.ceil(math.log(ms) * K)


def value(index: int) -> float:
    """The representative duration of a bucket: within RELATIVE_ERROR of every value it holds."""
    if index == ZERO:
        return 0.0
    return float(2 * GAMMA**index / (GAMMA + 1))


def bounds(index: int) -> tuple[float, float]:
    """``(lower, upper)``: the bucket holds ``lower < ms <= upper`` (clamped at both ends)."""
    if index == ZERO:
        return (-math.inf, 0.0)
    lower = 0.0 if index == MIN_INDEX else GAMMA ** (index - 1)
    return (lower, math.inf if index == MAX_INDEX else GAMMA**index)


def tally(durations: Iterable[float]) -> dict[int, int]:
    """Bucket counts of durations in milliseconds (what a roll-up row sums)."""
    return dict(Counter(bucket(ms) for ms in durations))


def merge(*histograms: Mapping[int, int]) -> dict[int, int]:
    """The bucket counts of several histograms summed (days into a range, models into a total)."""
    total: Counter[int] = Counter()
    for histogram in histograms:
        total.update(histogram)
    return {index: n for index, n in total.items() if n}


def sum_dense(rows: Iterable[tuple[int, Sequence[int] | NDArray[Any]]]) -> tuple[int, NDArray[np.int64]]:
    """Dense histograms summed into one: ``(first, total)``, ``total[k]`` durations in bucket
    ``first + k``; each row ``(lo, counts)`` holds ``counts[k]`` in bucket ``lo + k`` (how
    schema.sql's latency_hourly and latency_daily store them). Rows added slice by slice into one
    int64 array from the least ``lo`` (the latency read's arrays come as numpy arrays: see
    worker/read/queries/_base.py's CountsLoader). No rows, or only empty ones: ``(0, [])``."""
    kept = [(lo, np.asarray(counts, dtype=np.int64)) for lo, counts in rows if len(counts)]
    if not kept:
        return 0, np.zeros(0, dtype=np.int64)
    first = min(lo for lo, _ in kept)
    total = np.zeros(max(lo + len(counts) for lo, counts in kept) - first, dtype=np.int64)
    for lo, counts in kept:
        total[lo - first : lo - first + len(counts)] += counts
    return first, total


def merge_dense(rows: Iterable[tuple[int, Sequence[int] | NDArray[Any]]]) -> dict[int, int]:
    """The bucket counts of dense histograms summed (sum_dense), the empty buckets left out."""
    first, total = sum_dense(rows)
    nonzero = np.flatnonzero(total)
    return dict(zip((nonzero + first).tolist(), total[nonzero].tolist(), strict=True))


def percentiles_dense(
    first: int, total: NDArray[np.int64], qs: Sequence[float] = QUANTILES
) -> dict[float, float | None]:
    """Each ``q`` in ``qs`` (0..1) -> its percentile in ms for sum_dense's ``(first, total)``, by
    percentile_disc's rank: the first bucket whose running count reaches it (numpy's searchsorted;
    never an empty bucket); None when empty."""
    if any(not 0 <= q <= 1 for q in qs):
        raise ValueError(f"percentiles are fractions between 0 and 1, got {list(qs)}")
    if len(total) and int(total.min()) < 0:
        raise ValueError("a bucket count is negative: the histogram lost more than it counted")
    running = np.cumsum(total)
    n = int(running[-1]) if len(running) else 0
    if n == 0:
        return dict.fromkeys(qs)
    return {q: value(first + int(np.searchsorted(running, max(1, math.ceil(q * n))))) for q in qs}


def percentiles(counts: Mapping[int, int], qs: Sequence[float] = QUANTILES) -> dict[float, float | None]:
    """Each ``q`` in ``qs`` (0..1) -> its percentile in ms by percentile_disc's rank; None when empty:
    percentiles_dense over the buckets laid out densely (one rule for both forms)."""
    return percentiles_dense(*sum_dense((index, (n,)) for index, n in counts.items()), qs)
