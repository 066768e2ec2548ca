"""A relative rule's reading: its window's value over the same measure's just before (``baseline``).

The baseline is the span just before the window: for a window of days, the ``baseline // 1d``
whole UTC dates before its first date (``window = "1d"``, ``baseline = "7d"``: today so far
against the seven days before); for a window under a day, the ``baseline`` before the window's
start (``window = "1h"``, ``baseline = "1d"``: the last hour against the 24 hours before it).

The statements of worker/alerts/measure.py, spend.py and percentiles.py count from a start
(``since``, ``first_day``) up to now, with no end. So the baseline is the same statement read
from the baseline's start, less the same statement read from the window's start, both in one
snapshot (REPEATABLE READ): what the window counted is taken out of the wider read, label by
label. The two sides are measured exactly alike, whatever roll-up or base table the kind reads:

- a share (errors / finished) subtracts its numerator (value x samples, rounded) and its samples;
- a sum (cost, tokens) subtracts its value and its samples;
- a percentile subtracts bucket counts: both spans are read from the latency histograms (the
  base-table buckets under a day, the roll-up's over days; worker/alerts/percentiles.py), so both
  values are within 1.083% of ``percentile_disc``'s, and count the rounds that name a model.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, time
from typing import Any

import psycopg

from worker.alerts.evaluate import Reading, Sides, ratio
from worker.alerts.measure import DAY, STATEMENTS, parameters, read, span, statements_of
from worker.alerts.rules import Rule
from worker.engine import histogram

SNAPSHOT = "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"


@dataclass
class Tally:
    """What one span counted for one label: a value to subtract (a share's numerator, a sum), its
    samples, and a percentile's bucket counts."""

    amount: float = 0.0
    samples: int = 0
    buckets: dict[int, int] = field(default_factory=dict)


def baseline_start(rule: Rule, now: datetime) -> dict[str, Any]:
    """The parameters that move a rule's read back to its baseline's start."""
    assert rule.baseline is not None
    window = span(rule, now)
    if window["days"]:
        first = window["first_day"] - (rule.baseline // DAY) * DAY
        return {"since": datetime.combine(first, time(0), tzinfo=UTC), "first_day": first}
    return {"since": window["since"] - rule.baseline}


def measure_relative(conn: psycopg.Connection[Any], rule: Rule, now: datetime) -> list[Reading]:
    """A relative rule's readings at ``now``, one per label found in the window or its baseline
    (a rule not grouped: always one). ``conn`` in autocommit mode: both reads share one snapshot."""
    first, fallback = _statements(rule, now)
    params = parameters(rule, now)
    with conn.transaction():
        conn.execute(SNAPSHOT)
        window = _tallies(rule, read(conn, first, fallback, params))
        wide = _tallies(rule, read(conn, first, fallback, params | baseline_start(rule, now)))
    labels = sorted(window.keys() | wide.keys() | ({""} if not rule.group_by else set()))
    readings = []
    for label in labels:
        now_side, all_side = window.get(label, Tally()), wide.get(label, Tally())
        before = Tally(
            max(all_side.amount - now_side.amount, 0.0),
            max(all_side.samples - now_side.samples, 0),
            {b: n - now_side.buckets.get(b, 0) for b, n in all_side.buckets.items()},
        )
        sides = Sides(_value(rule, now_side), now_side.samples, _value(rule, before), before.samples)
        name = f"{rule.group_by}={label}" if rule.group_by else ""
        readings.append(Reading(name, ratio(sides), sides.current_samples, sides))
    return readings


def _statements(rule: Rule, now: datetime) -> tuple[str, str | None]:
    """The statement (and its twin) a relative rule reads: its own, but a percentile's under a day
    is the base-table buckets (the histograms subtract; ``percentile_disc`` does not)."""
    if rule.kind.quantile is not None and not span(rule, now)["days"]:
        return STATEMENTS[rule.watch][1][0].twin, None
    return statements_of(rule, now)


def _tallies(rule: Rule, rows: list[dict[str, Any]]) -> dict[str, Tally]:
    tallies: dict[str, Tally] = defaultdict(Tally)
    for row in rows:
        tally = tallies[row["label"]]
        if rule.kind.quantile is not None:  # a histogram: label, bucket, n (or a dense lo, counts)
            dense = row["counts"] if "counts" in row else [row["n"]]
            first = row["lo"] if "lo" in row else row["bucket"]
            for k, n in enumerate(dense):
                tally.buckets[first + k] = tally.buckets.get(first + k, 0) + int(n)
                tally.samples += int(n)
            continue
        samples = int(row["samples"] or 0)
        value = float(row["value"] or 0)
        tally.samples += samples
        tally.amount += round(value * samples) if rule.kind.share else value
    return tallies


def _value(rule: Rule, tally: Tally) -> float | None:
    q = rule.kind.quantile
    if q is not None:
        return histogram.percentiles({b: n for b, n in tally.buckets.items() if n > 0}, (q,))[q]
    if rule.kind.share:
        return tally.amount / tally.samples if tally.samples else 0.0
    return tally.amount
