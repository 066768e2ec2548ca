"""The alert state machine on its own: flapping with ``for`` sends nothing, an episode sends one
firing and one resolved, repeats come on time, unknown values change nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from worker.alerts.evaluate import FIRING, OK, PENDING, Notice, Reading, State, step
from worker.alerts.rules import Rule

T0 = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def rule(**changes: object) -> Rule:
    base: dict[str, object] = {
        "name": "tool failures",
        "watch": "tool_error_share",
        "window": timedelta(minutes=15),
        "comparison": ">",
        "threshold": 0.2,
        "min_samples": 10,
        "hold": timedelta(minutes=5),
    }
    base.update(changes)
    return Rule(**base)  # type: ignore[arg-type]


def run(r: Rule, values: list[float | None], samples: int = 50) -> tuple[State | None, list[Notice]]:
    state: State | None = None
    sent: list[Notice] = []
    for n, value in enumerate(values):
        s = step(r, state, Reading("", value, samples), T0 + n * MINUTE)
        state = s.state
        sent += [s.notice] if s.notice else []
    return state, sent


@settings(max_examples=300, deadline=None)  # pure, but the machine is shared
@given(st.lists(st.tuples(st.integers(1, 4), st.integers(1, 10)), min_size=1, max_size=30))
def test_flapping_shorter_than_for_sends_nothing(runs: list[tuple[int, int]]) -> None:
    """Breaching for at most 4 minutes at a time, ``for`` 5m: never fires, whatever the pattern."""
    values: list[float | None] = []
    for bad, good in runs:
        values += [0.5] * bad + [0.1] * good
    state, sent = run(rule(), values)
    assert sent == []
    assert state is not None and state.phase in (OK, PENDING)


@settings(max_examples=300, deadline=None)  # pure, but the machine is shared
@given(
    st.integers(0, 20),
    st.integers(6, 60),
    st.integers(1, 30),
    st.lists(st.none(), max_size=3),
)
def test_one_episode_sends_one_firing_then_one_resolved(
    before: int, bad: int, after: int, unknown: list[None]
) -> None:
    values: list[float | None] = [0.1] * before + [0.5] * bad + list(unknown) + [0.1] * after
    state, sent = run(rule(), values)
    assert [n.event for n in sent] == ["firing", "resolved"]
    firing, resolved = sent
    assert firing.at - firing.fired_at == timedelta(0)
    assert firing.at == T0 + (before + 5) * MINUTE  # held for 5 minutes first
    assert resolved.fired_at == firing.fired_at and resolved.key != firing.key
    assert state is not None and state.phase == OK


def test_too_few_samples_never_fire_and_resolve_a_firing_one() -> None:
    assert run(rule(hold=timedelta(0)), [1.0] * 10, samples=9)[1] == []
    state: State | None = None
    events = []
    for n, samples in enumerate([50, 50, 3]):
        s = step(rule(hold=timedelta(0)), state, Reading("", 1.0, samples), T0 + n * MINUTE)
        state = s.state
        events.append(s.notice.event if s.notice else None)
    assert events == ["firing", None, "resolved"]


def test_repeat_while_firing_comes_every_interval() -> None:
    _, sent = run(rule(hold=timedelta(0), repeat=timedelta(minutes=10)), [0.9] * 31 + [0.0])
    assert [n.event for n in sent] == ["firing", "repeat", "repeat", "repeat", "resolved"]
    assert len({n.key for n in sent}) == 5


def test_an_unknown_value_changes_nothing() -> None:
    state = State(FIRING, T0, 0.5, 50, fired_at=T0, notified_at=T0)
    s = step(rule(), state, Reading("", None, 0), T0 + MINUTE)
    assert (s.state, s.notice, s.change) == (state, None, None)


def test_silence_fires_on_nothing_whatever_the_minimum() -> None:
    r = rule(watch="silence", comparison="<", threshold=1, hold=timedelta(0))
    _, sent = run(r, [3, 0, 0, 2], samples=0)
    assert [n.event for n in sent] == ["firing", "resolved"]


def test_the_pipeline_kinds_read_the_status_view() -> None:
    from worker.alerts.measure import measure_pipeline
    from worker.status import PipelineStatus

    status = PipelineStatus(undelivered=3, pending=2, unrouted=4, lag_seconds=7.5, dead_letters=1)
    backlog, lag, dead = (rule(watch=w, window=None) for w in ("backlog", "lag_seconds", "dead_letters"))
    assert measure_pipeline(backlog, status) == [Reading("", 9.0, 1)]
    assert measure_pipeline(lag, status) == [Reading("", 7.5, 1)]
    assert measure_pipeline(dead, status) == [Reading("", 1.0, 1)]
    assert measure_pipeline(backlog, status.model_copy(update={"unrouted": None})) == [Reading("", None, 1)]
