"""A rule's value from spans of the past: its window over the same measure's just before it
(``baseline``: a relative rule, whose value is the ratio), or its window ending a while ago
(``offset``: ``window = "1d"``, ``offset = "1d"`` is yesterday's whole UTC date), or both.

The baseline is the span just before the window: for a window of days, the ``baseline // 1d``
whole UTC dates before its first date (``window = "1d"``, ``baseline = "7d"``: today so far
against the seven days before); for a window under a day, the ``baseline`` before the window's
start (``window = "1h"``, ``baseline = "1d"``: the last hour against the 24 hours before it). An
``offset`` moves the window's end (and its baseline with it) that long back from now.

The statements of worker/alerts/measure.py, spend.py and percentiles.py count from a start
(``since``, ``first_day``) up to now, with no end (a roll-up's up to ``last_day``, kept the same
in every read). So the baseline is the same statement read
from the baseline's start, less the same statement read from the window's start (and a shifted
window the statement read from its start, less read from its end), all in one snapshot
(REPEATABLE READ): what the narrower read counted is taken out of the wider one, label by label.
The spans are measured exactly alike, whatever roll-up or base table the kind reads:

- a share (errors / finished) subtracts its numerator (value x samples, rounded) and its samples;
- a sum (cost, tokens) subtracts its value and its samples;
- a percentile subtracts bucket counts: both spans are read from the latency histograms (the
  base-table buckets under a day, the roll-up's over days; worker/alerts/percentiles.py), so both
  values are within 1.083% of ``percentile_disc``'s, and count the rounds that name a model.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
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
    """The parameters that move a rule's read back to its baseline's start (``now``: the end of
    the rule's window, before its ``offset``)."""
    assert rule.baseline is not None
    window = span(rule, now)
    if window["days"]:
        first = window["first_day"] - (rule.baseline // DAY) * DAY
        return {"since": datetime.combine(first, time(0), tzinfo=UTC), "first_day": first}
    return {"since": window["since"] - rule.baseline}


def window_end(rule: Rule, now: datetime) -> dict[str, Any]:
    """The parameters that move a rule's read up to its window's end (``now``: that end, before
    the rule's ``offset``): the next UTC date for a window of days, else ``now``."""
    if span(rule, now)["days"]:
        day = now.astimezone(UTC).date() + DAY
        return {"since": datetime.combine(day, time(0), tzinfo=UTC), "first_day": day}
    return {"since": now}


def measure_relative(conn: psycopg.Connection[Any], rule: Rule, now: datetime) -> list[Reading]:
    """The readings at ``now`` of a rule with a ``baseline`` or an ``offset``: one per label found
    in the window (or its baseline: a rule not grouped, always one). ``conn`` in autocommit mode:
    the reads share one snapshot."""
    end = now - (rule.offset or timedelta(0))  # the window's end
    first, fallback = _statements(rule, end)
    params = parameters(rule, end)
    with conn.transaction():
        conn.execute(SNAPSHOT)
        window = _tallies(rule, read(conn, first, fallback, params))
        if rule.offset is not None:  # what came after the window's end, taken out
            window = _minus(
                window, _tallies(rule, read(conn, first, fallback, params | window_end(rule, end)))
            )
        if rule.baseline is None:
            return _readings(rule, window)
        wide = _tallies(rule, read(conn, first, fallback, params | baseline_start(rule, end)))
    before = _minus(wide, window)
    labels = sorted(window.keys() | before.keys() | ({""} if not rule.group_by else set()))
    readings = []
    for label in labels:
        now_side, then = window.get(label, Tally()), before.get(label, Tally())
        sides = Sides(_value(rule, now_side), now_side.samples, _value(rule, then), then.samples)
        readings.append(Reading(_name(rule, label), ratio(sides), sides.current_samples, sides))
    return readings


def _readings(rule: Rule, window: dict[str, Tally]) -> list[Reading]:
    """A shifted window's readings, as worker/alerts/measure.py gives a window's: a label with no
    samples left out, a rule not grouped 0 with no samples when nothing was counted."""
    found = [
        Reading(_name(rule, label), _value(rule, t) or 0.0, t.samples)
        for label, t in sorted(window.items())
        if t.samples
    ]
    return found or ([] if rule.group_by else [Reading("", 0.0, 0)])


def _minus(wide: dict[str, Tally], narrow: dict[str, Tally]) -> dict[str, Tally]:
    """Label by label, what ``wide`` counted beyond ``narrow`` (a span that holds it)."""
    out = {}
    for label, w in wide.items():
        n = narrow.get(label, Tally())
        buckets = {b: c - n.buckets.get(b, 0) for b, c in w.buckets.items()}
        out[label] = Tally(max(w.amount - n.amount, 0.0), max(w.samples - n.samples, 0), buckets)
    return out


def _name(rule: Rule, label: str) -> str:
    return f"{rule.group_by}={label}" if rule.group_by else ""


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
        if rule.kind.quantile is not None:  # a histogram: label, lo, counts (counts[k] in bucket lo + k)
            for k, n in enumerate(row["counts"]):
                tally.buckets[row["lo"] + k] = tally.buckets.get(row["lo"] + k, 0) + int(n)
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
