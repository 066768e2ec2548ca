"""Relative and shifted rules over real tables: the baseline side is what the rule itself measured
over the span before, the window side what it measures now, and a window with an ``offset`` what
the rule measured then, for every measured kind, over the base tables (windows under a day) and
the roll-ups (windows of days)."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

import psycopg
import pytest

from contract.events import Event
from tests.alerts.helpers import NOW
from tests.engine.costs import priced_round
from tests.engine.costs import usage as tokens
from tests.read.conftest import fill
from tests.read.events import Events, usage
from worker.alerts.evaluate import Reading
from worker.alerts.kinds import KINDS
from worker.alerts.measure import measure_tables
from worker.alerts.relative import measure_relative
from worker.alerts.rules import Rule
from worker.engine.histogram import RELATIVE_ERROR

MEASURED = [k.name for k in KINDS.values() if k.comparable]
HOUR, DAY = timedelta(hours=1), timedelta(days=1)


def activity(start: datetime, prefix: str, seed: int, n: int = 40) -> list[Event]:
    """``n`` sessions in the 50 minutes after ``start``, each with a round of random duration,
    first token, tokens and outcome, a tool call and a forward; and priced rounds."""
    rng = random.Random(seed)
    ev = Events()
    for i in range(n):
        at = start + timedelta(minutes=rng.randrange(50))
        model = rng.choice(["gpt-4o", "m2"])
        sid, rid = f"{prefix}s{i}", f"{prefix}r{i}"
        ev.session_started(sid, model, at)
        ev.round_started(rid, sid, model, at)
        ev.tool_started(f"{rid}-t", rid, sid, rng.choice(["x", "y"]), at)
        ev.tool_completed(f"{rid}-t", rid, sid, at, success=rng.random() > 0.3)
        ev.forward_started(f"{prefix}f{i}", "e1", model, at)
        ev.forward_completed(f"{prefix}f{i}", at, status=rng.choice(["success", "error", "timeout"]))
        done = at + timedelta(milliseconds=rng.randrange(100, 30_000))
        status = "error" if rng.random() < 0.25 else "success"
        ev.round_completed(
            rid, sid, done, usage(rng.randrange(1, 900), 5), status=status, ttft=rng.randrange(50, 5000)
        )
        ev.session_completed(sid, rng.choice(["completed", "error", "cancelled"]), done)
    priced = [
        priced_round(start, f"{prefix}p{i}", f"{prefix}s{i}", tokens=tokens(1000 * (i + 1), 10))
        for i in range(rng.randrange(1, 6))
    ]
    return ev.events + [e for events in priced for e in events]


def rule(
    watch: str,
    window: timedelta,
    group: bool,
    baseline: timedelta | None = None,
    offset: timedelta | None = None,
) -> Rule:
    by = "model" if group and "model" in KINDS[watch].filters else None
    return Rule(watch, watch, window, ">=", 2.0, group_by=by, baseline=baseline, offset=offset, min_samples=0)


def by_labels(readings: list[Reading]) -> dict[str, Reading]:
    return {r.labels: r for r in readings}


def close(a: float | None, b: float | None, tolerance: float) -> bool:
    if a is None or b is None:
        return a is b
    return abs(a - b) <= tolerance * abs(b) + 1e-9


@pytest.mark.parametrize(("window", "seed"), [(HOUR, 1), (DAY, 2), (HOUR, 3), (DAY, 4)])
def test_both_sides_are_what_the_rule_measures_over_each_span(
    conn: psycopg.Connection[Any], window: timedelta, seed: int
) -> None:
    earlier = NOW - window - timedelta(minutes=55) if window < DAY else NOW - DAY - 2 * HOUR
    fill(conn, activity(earlier, "b", seed))
    then = NOW - window
    expected = {
        (watch, group): by_labels(measure_tables(conn, rule(watch, window, group), then))
        for watch in MEASURED
        for group in (False, True)
    }
    fill(conn, activity(NOW - timedelta(minutes=55), "w", seed + 100))
    for watch in MEASURED:
        for group in (False, True):
            relative = rule(watch, window, group, baseline=window)
            now = by_labels(measure_tables(conn, rule(watch, window, group), NOW))
            got = by_labels(measure_relative(conn, relative, NOW))
            before = expected[(watch, group)]
            # percentiles: each side from the histograms (within the bucket error of the rows')
            tolerance = 2 * RELATIVE_ERROR if KINDS[watch].quantile and window < DAY else 1e-9
            assert set(got) >= set(now) | {k for k, r in before.items() if r.samples}, (watch, group)
            for labels, r in got.items():
                assert r.sides is not None
                assert r.sides.current_samples == (now[labels].samples if labels in now else 0)
                assert r.sides.baseline_samples == (before[labels].samples if labels in before else 0)
                if labels in now and now[labels].samples:
                    assert close(r.sides.current, now[labels].value, tolerance), (watch, labels, r, now)
                if labels in before and before[labels].samples:
                    assert close(r.sides.baseline, before[labels].value, tolerance), (watch, labels, r)
                if r.sides.baseline and r.sides.current is not None:
                    assert r.value == r.sides.current / r.sides.baseline
            # the same window one window ago (offset): what the rule measured then, no more
            shifted = by_labels(measure_relative(conn, rule(watch, window, group, offset=window), NOW))
            # (a label with rows but no samples, e.g. unpriced rounds, reads as one not there: 0, none)
            counted = {k: r.samples for k, r in before.items() if r.samples}
            assert {k: r.samples for k, r in shifted.items() if r.samples or k} == counted, watch
            for labels, r in shifted.items():
                assert r.sides is None and close(r.value, before[labels].value, tolerance), (watch, r)
