"""A session reconcile closes: completed_at is its last activity, it is marked (reconciled_at), a
later event reopens it and the next reconcile closes it again; redeliveries and older events do
not reopen it; a real session.completed wins and clears the mark; old databases are upgraded."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contract.events import (
    Event,
    RoundCompleted,
    RoundStarted,
    SessionCompleted,
    SessionStarted,
    TokenUsage,
    ToolCompleted,
    ToolStarted,
)
from tests.engine.rollups import assert_rollups_match, rollup_buckets
from tests.maintenance.helpers import aggregate_drift
from worker.engine.apply import apply_events
from worker.maintenance.reconcile import HintSnapshot, reconcile
from worker.read import queries
from worker.schema import apply_schema

T = datetime(2026, 2, 12, 9, 0, 0, tzinfo=UTC)
GRACE = timedelta(minutes=10)
LAST = T + timedelta(minutes=2)  # the history's last activity: a tool call's completion
NOW = T + timedelta(hours=1)

HISTORY: list[Event] = [
    SessionStarted(event_id="s-start", occurred_at=T, session_id="s", model="m"),
    RoundStarted(event_id="r1-start", occurred_at=T, round_id="r1", session_id="s", model="m"),
    RoundCompleted(
        event_id="r1-done",
        occurred_at=T + timedelta(minutes=1),
        round_id="r1",
        session_id="s",
        status="success",
        usage=TokenUsage(prompt_tokens=3, completion_tokens=4, total_tokens=7),
    ),
    RoundStarted(
        event_id="r2-start", occurred_at=T + timedelta(minutes=1), round_id="r2", session_id="s", model="m"
    ),
    ToolStarted(
        event_id="t-start",
        occurred_at=T + timedelta(minutes=1),
        tool_call_id="t",
        round_id="r2",
        session_id="s",
        tool_name="shell",
    ),
    ToolCompleted(
        event_id="t-done", occurred_at=LAST, tool_call_id="t", round_id="r2", session_id="s", success=True
    ),
]


def session(conn: psycopg.Connection) -> tuple[Any, ...]:
    row = conn.execute(
        "SELECT status, completed_at, reconciled_at, status_version FROM session_metrics "
        "WHERE session_id = 's'"
    ).fetchone()
    assert row is not None
    return tuple(row)


def later_round(at: datetime, rid: str = "r3") -> RoundStarted:
    return RoundStarted(event_id=f"{rid}-start", occurred_at=at, round_id=rid, session_id="s", model="m")


def test_reconcile_closes_at_the_last_activity_and_marks_it(conn: psycopg.Connection) -> None:
    apply_events(conn, HISTORY)
    counts = reconcile(conn, HintSnapshot(), now=NOW, grace=GRACE)
    assert (counts["sessions_completed"], counts["rounds"]) == (1, 1)
    status, completed_at, reconciled_at, version = session(conn)
    # The tool call's completion was the last thing heard of: not the start, not the reconcile time.
    assert (status, completed_at, reconciled_at) == ("completed", LAST, NOW)
    assert version == HISTORY[0].order_key + "|reconciled"
    # The stale round, too, ends at the last activity of its session; the completed one is untouched.
    rounds = conn.execute(
        "SELECT round_id, status, completed_at, error FROM round_metrics ORDER BY 1"
    ).fetchall()
    assert rounds == [
        ("r1", "success", T + timedelta(minutes=1), None),
        ("r2", "error", LAST, "reconciled_stale_round"),
    ]
    detail = queries.session_detail(conn, "s")
    assert detail is not None and detail.session.duration_ms == 2 * 60 * 1000  # not the hour reconcile waited
    assert_rollups_match(conn)
    marked = {key[3] for key in rollup_buckets(conn)["session_rollup"]}
    assert marked == {True}  # counted apart from real completions


def test_a_later_round_reopens_and_the_next_reconcile_closes_at_the_new_last_activity(
    conn: psycopg.Connection,
) -> None:
    apply_events(conn, HISTORY)
    reconcile(conn, HintSnapshot(), now=NOW, grace=GRACE)
    # The agent was alive after all: a round 50 minutes later, after reconcile ran.
    back = T + timedelta(minutes=50)
    apply_events(conn, [later_round(back)])
    status, completed_at, reconciled_at, _ = session(conn)
    assert (status, completed_at, reconciled_at) == ("running", None, None)
    assert_rollups_match(conn)
    assert {key[2:] for key in rollup_buckets(conn)["session_rollup"]} == {("running", False)}
    # Not stale yet at NOW (idle for 10 minutes only): nothing happens.
    assert reconcile(conn, HintSnapshot(), now=NOW, grace=GRACE)["sessions_completed"] == 0
    later = NOW + timedelta(hours=1)
    assert reconcile(conn, HintSnapshot(), now=later, grace=GRACE)["sessions_completed"] == 1
    status, completed_at, reconciled_at, version = session(conn)
    assert (status, completed_at, reconciled_at) == ("completed", back, later)
    assert version == HISTORY[0].order_key + "|reconciled"  # stamped once, however often closed
    assert conn.execute("SELECT status FROM round_metrics WHERE round_id = 'r3'").fetchone() == ("error",)
    assert_rollups_match(conn)
    assert aggregate_drift(conn) == []


def test_redelivered_and_older_events_do_not_reopen(conn: psycopg.Connection) -> None:
    apply_events(conn, HISTORY)
    reconcile(conn, HintSnapshot(), now=NOW, grace=GRACE)
    closed = session(conn)
    apply_events(conn, HISTORY)  # redelivered, all of them
    apply_events(conn, list(reversed(HISTORY)))
    # Never seen before, but from before the last activity: it changes nothing about liveness.
    apply_events(conn, [later_round(LAST - timedelta(seconds=30), "late-old")])
    # At the same instant as the last activity: not later either.
    apply_events(conn, [later_round(LAST, "same-instant")])
    assert session(conn) == closed
    assert_rollups_match(conn)
    assert aggregate_drift(conn) == []


def test_a_real_completion_after_reconcile_wins_and_clears_the_mark(conn: psycopg.Connection) -> None:
    apply_events(conn, HISTORY)
    reconcile(conn, HintSnapshot(awaiting=frozenset({"s"})), now=NOW, grace=GRACE)
    assert session(conn)[:3] == ("awaiting_response", LAST, NOW)
    # The seed's semantics: the completion's own time and status, even one from before the last activity.
    done = T + timedelta(seconds=90)
    apply_events(
        conn, [SessionCompleted(event_id="s-done", occurred_at=done, session_id="s", status="error")]
    )
    assert session(conn)[:3] == ("error", done, None)
    assert_rollups_match(conn)
    # Closed for real now: reconcile leaves it alone, and so does a later round (no reopening
    # what a real completion closed, as in the seed).
    assert reconcile(conn, HintSnapshot(), now=NOW + timedelta(hours=2), grace=GRACE)["reconciled"] == 0
    apply_events(conn, [later_round(NOW + timedelta(hours=3))])
    assert session(conn)[:3] == ("error", done, None)


def test_a_reopened_session_then_completed_for_real(conn: psycopg.Connection) -> None:
    apply_events(conn, HISTORY)
    reconcile(conn, HintSnapshot(), now=NOW, grace=GRACE)
    back = T + timedelta(minutes=50)
    end = back + timedelta(minutes=1)
    apply_events(
        conn,
        [
            SessionCompleted(event_id="s-done", occurred_at=end, session_id="s", status="completed"),
            later_round(back),
        ],
    )
    assert session(conn)[:3] == ("completed", end, None)
    assert_rollups_match(conn)


def _arrival(rng: random.Random) -> list[Event]:
    """HISTORY's events, each delivered 1-3 times, in any order."""
    copies = [ev for ev in HISTORY for _ in range(rng.randint(1, 3))]
    rng.shuffle(copies)
    return copies


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rng=st.randoms(use_true_random=False), split=st.integers(1, len(HISTORY)), reopen=st.booleans())
def test_whatever_was_delivered_before_reconcile_only_a_later_event_reopens(
    conn: psycopg.Connection, rng: random.Random, split: int, reopen: bool
) -> None:
    """Any part of the history applied, reconcile, then everything again in any order and number:
    the session stays closed (at the last activity it had when reconciled, or later when the rest
    of the history arrived with later events) unless an event later than everything seen comes."""
    conn.execute("DELETE FROM session_metrics; DELETE FROM round_metrics; DELETE FROM tool_call_metrics")
    ordered = sorted(HISTORY, key=lambda ev: ev.order_key)
    first = ordered[:split]
    if not any(ev.type == "session.started" for ev in first):
        first = [HISTORY[0], *first]
    apply_events(conn, first)
    reconcile(conn, HintSnapshot(), now=NOW, grace=GRACE)
    seen = max(ev.occurred_at for ev in first)
    assert session(conn)[:3] == ("completed", seen, NOW)
    rest = _arrival(rng) + ([later_round(NOW + timedelta(minutes=5))] if reopen else [])
    rng.shuffle(rest)
    for i in range(0, len(rest), 3):
        apply_events(conn, rest[i : i + 3])
    status, completed_at, reconciled_at, _ = session(conn)
    if reopen or seen < LAST:
        assert (status, completed_at, reconciled_at) == ("running", None, None)
        reconcile(conn, HintSnapshot(), now=NOW + timedelta(hours=1), grace=GRACE)
        end = NOW + timedelta(minutes=5) if reopen else LAST
        assert session(conn)[:3] == ("completed", end, NOW + timedelta(hours=1))
    else:
        assert (status, completed_at, reconciled_at) == ("completed", seen, NOW)
    assert_rollups_match(conn)
    assert aggregate_drift(conn) == []


# What the previous version's schema had: no mark, a roll-up without the reconciled dimension.
_PREVIOUS_VERSION = """
ALTER TABLE session_metrics DROP COLUMN reconciled_at;
ALTER TABLE session_rollup DROP COLUMN reconciled;
ALTER TABLE session_rollup ADD PRIMARY KEY (day, model, status, slot);
"""

# The previous version's reconcile: completed_at = the time it ran, no mark.
_PREVIOUS_RECONCILE = """
UPDATE session_metrics SET status = 'completed', completed_at = %(now)s,
       status_version = status_version || '|reconciled'
WHERE session_id = 'old-guess'
"""


def test_an_old_database_gets_the_mark_for_what_its_reconcile_closed(conn: psycopg.Connection) -> None:
    apply_events(
        conn,
        [
            SessionStarted(event_id="a", occurred_at=T, session_id="old-guess", model="m"),
            RoundStarted(event_id="b", occurred_at=LAST, round_id="r", session_id="old-guess", model="m"),
            SessionStarted(event_id="c", occurred_at=T, session_id="real", model="m"),
            SessionCompleted(event_id="d", occurred_at=LAST, session_id="real", status="completed"),
            SessionStarted(event_id="e", occurred_at=T, session_id="open", model="m"),
        ],
    )
    conn.execute(_PREVIOUS_RECONCILE, {"now": NOW})  # no mark yet: counted as reconciled = false
    conn.execute(_PREVIOUS_VERSION)

    apply_schema(conn, force=True)  # the upgrade

    rows = conn.execute(
        "SELECT session_id, status, completed_at, reconciled_at FROM session_metrics ORDER BY 1"
    ).fetchall()
    assert rows == [
        ("old-guess", "completed", LAST, NOW),  # its last activity; reconcile's time kept as the mark
        ("open", "running", None, None),
        ("real", "completed", LAST, None),
    ]
    assert_rollups_match(conn)
    apply_schema(conn, force=True)  # again: nothing more changes
    assert conn.execute(
        "SELECT count(*) FROM session_metrics WHERE reconciled_at IS NOT NULL"
    ).fetchone() == (1,)
    assert_rollups_match(conn)
