"""The alert state machine, pure: (rule, reading, stored state, now) -> next state, notice.

A rule, what was measured, the stored state and ``now`` give the new state and the notification
to send, if any.

States of one rule and label set: ``ok``, ``pending`` (breaching, for less than the rule's
``for``), ``firing``. Breaching means at least ``min_samples`` samples and the value on the wrong
side of the threshold; too few samples is not breaching (no alert on 1 failure of 2), and a
firing alert whose samples fall below the minimum resolves. An unknown value (the pipeline's
Redis did not answer) changes nothing.

A relative rule (one with a ``baseline``) reads a ratio: the window's value over the baseline's.
It breaches only when both spans have at least ``min_samples`` samples, the baseline's value is
above 0 and the ratio is on the wrong side; otherwise there is no ratio (``why_no_ratio`` says
why), which is not breaching, as too few samples is not.

Notifications: ``firing`` when it starts firing, ``repeat`` every ``repeat`` while it stays
firing (when the rule has one), ``resolved`` when it stops. Each has a key made of the rule, the
labels, the time the episode began firing and the event: the same episode can never make two
notifications with one key, which the store relies on (worker/alerts/store.py).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from worker.alerts.rules import Rule

OK, PENDING, FIRING = "ok", "pending", "firing"


@dataclass(frozen=True, order=True)
class Sides:
    """A relative rule's two spans for one label set: the window's value and samples, and the
    baseline's (a value is None when its span has none: a percentile of no rounds)."""

    current: float | None
    current_samples: int
    baseline: float | None
    baseline_samples: int


@dataclass(frozen=True, order=True)
class Reading:
    """What was measured for one label set ('' for the rule as a whole, else ``model=gpt-4``).
    A relative rule's: ``value`` the ratio (None: there is none), ``samples`` the window's, and
    ``sides`` both spans."""

    labels: str
    value: float | None  # None: unknown this time (a relative rule's: no ratio)
    samples: int
    sides: Sides | None = None


@dataclass(frozen=True)
class State:
    phase: str
    since: datetime  # when it entered this phase
    value: float | None = None
    samples: int = 0
    fired_at: datetime | None = None  # when the current firing episode began
    notified_at: datetime | None = None  # the episode's last firing or repeat notification
    repeats: int = 0


@dataclass(frozen=True)
class Notice:
    """A notification to send: ``event`` is firing, repeat or resolved."""

    rule: str
    labels: str
    event: str
    key: str
    value: float | None
    samples: int
    fired_at: datetime
    at: datetime
    sides: Sides | None = None


@dataclass(frozen=True)
class Step:
    state: State
    notice: Notice | None
    change: str | None  # the history entry: pending, firing, resolved, cleared; None: no change


def breaching(rule: Rule, reading: Reading) -> bool | None:
    """Whether the reading is on the wrong side; None when the value is unknown."""
    if rule.baseline is not None:
        return why_no_ratio(rule, reading) is None and rule.breaches(reading.value or 0.0)
    if reading.value is None:
        return None
    if rule.kind.source == "tables" and rule.watch != "silence" and reading.samples < rule.min_samples:
        return False
    return rule.breaches(reading.value)


def why_no_ratio(rule: Rule, reading: Reading) -> str | None:
    """Why a relative rule's reading has no ratio to compare (no alert); None: it has one."""
    sides = reading.sides
    if sides is None:
        return "nothing measured in the window or the baseline"
    before = f"the baseline (the {rule.baseline_text} before)"
    if sides.current_samples < rule.min_samples:
        return f"{sides.current_samples} samples in the window, fewer than min_samples {rule.min_samples}"
    if sides.baseline_samples < rule.min_samples:
        return f"{sides.baseline_samples} samples in {before}, fewer than min_samples {rule.min_samples}"
    if sides.current is None:
        return "no value in the window"
    if not sides.baseline:
        return f"{before} is 0: nothing to compare with"
    return None


def ratio(sides: Sides) -> float | None:
    """The window's value over the baseline's; None when the baseline is 0 or either is unknown."""
    if sides.current is None or not sides.baseline:
        return None
    return sides.current / sides.baseline


def notice_key(rule: str, labels: str, fired_at: datetime, event: str) -> str:
    return f"{rule}\x1f{labels}\x1f{fired_at.isoformat()}\x1f{event}"


def step(rule: Rule, state: State | None, reading: Reading, now: datetime) -> Step:
    """The next state of ``rule`` for ``reading.labels`` at ``now``, from ``state`` (None: never
    evaluated), and what to send."""
    current = state or State(OK, now)
    bad = breaching(rule, reading)
    if bad is None:
        return Step(current, None, None)
    seen = replace(current, value=reading.value, samples=reading.samples)
    if not bad:
        if current.phase == FIRING:
            assert current.fired_at is not None
            notice = _notice(rule, reading, current.fired_at, "resolved", now)
            return Step(State(OK, now, reading.value, reading.samples), notice, "resolved")
        if current.phase == PENDING:
            return Step(State(OK, now, reading.value, reading.samples), None, "cleared")
        return Step(seen, None, None)
    if current.phase == OK:
        current = State(PENDING, now, reading.value, reading.samples)
        if rule.hold > timedelta(0):  # a wait before firing: pending first
            return Step(current, None, "pending")
    if current.phase == PENDING:
        if now - current.since < rule.hold:
            return Step(replace(current, value=reading.value, samples=reading.samples), None, None)
        fired = State(FIRING, now, reading.value, reading.samples, fired_at=now, notified_at=now)
        return Step(fired, _notice(rule, reading, now, "firing", now), "firing")
    # firing, still breaching: a repeat when it is due
    assert current.fired_at is not None and current.notified_at is not None
    if rule.repeat is not None and now - current.notified_at >= rule.repeat:
        n = current.repeats + 1
        repeated = replace(seen, notified_at=now, repeats=n)
        return Step(repeated, _notice(rule, reading, current.fired_at, f"repeat {n}", now), None)
    return Step(seen, None, None)


def _notice(rule: Rule, reading: Reading, fired_at: datetime, event: str, now: datetime) -> Notice:
    return Notice(
        rule=rule.name,
        labels=reading.labels,
        event=event.split(" ", 1)[0],
        key=notice_key(rule.name, reading.labels, fired_at, event),
        value=reading.value,
        samples=reading.samples,
        fired_at=fired_at,
        at=now,
        sides=reading.sides,
    )
