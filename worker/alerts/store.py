"""Alert state in PostgreSQL: each rule's step under its lock, each notification claimed once.

A notification is claimed before it is sent; its outcome is recorded after.

Two evaluations at once (two schedulers, the job next to a person's ``alerts check``, a restart
while one runs) must not send one notification twice. Three things make that so, each alone
enough for its own case:

- the step of one rule runs in one transaction holding a transaction-level advisory lock on the
  rule (and the schema), so a second evaluation of that rule waits and then reads the state the
  first one wrote: it sees "firing" already and makes no new notification;
- a notification is a row whose key is the rule, the labels, the time its firing began and the
  event (worker/alerts/evaluate.py), inserted ``ON CONFLICT DO NOTHING`` in that transaction,
  before anything is sent: only the evaluation whose insert made the row sends it;
- the scheduled job (and ``alerts run``) runs one at a time anyway (worker/runs.py).

So a notification is sent at most once: an evaluation killed between its commit and the send
leaves the row ``sending`` (shown by ``alerts history``), and is not sent again by the next.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from worker.alerts.evaluate import Notice, Reading, State, Step, step
from worker.alerts.rules import Rule

LOCK_RULE = """
SELECT pg_advisory_xact_lock(hashtextextended('metrics-alerts:' || current_schema() || ':' || %(rule)s, 0))
"""

RULE_STATES = """
SELECT labels, phase, since, value, samples, fired_at, notified_at, repeats
FROM alert_state
WHERE rule = %(rule)s
"""

SAVE_STATE = """
INSERT INTO alert_state AS s (rule, labels, phase, since, value, samples, severity, fired_at, notified_at,
                              repeats, evaluated_at)
VALUES (%(rule)s, %(labels)s, %(phase)s, %(since)s, %(value)s, %(samples)s, %(severity)s, %(fired_at)s,
        %(notified_at)s, %(repeats)s, %(evaluated_at)s)
ON CONFLICT (rule, labels) DO UPDATE SET
    phase = EXCLUDED.phase, since = EXCLUDED.since, value = EXCLUDED.value, samples = EXCLUDED.samples,
    severity = EXCLUDED.severity, fired_at = EXCLUDED.fired_at, notified_at = EXCLUDED.notified_at,
    repeats = EXCLUDED.repeats, evaluated_at = EXCLUDED.evaluated_at
"""

RECORD_CHANGE = """
INSERT INTO alert_history (rule, labels, change, at, value, samples, threshold, condition)
VALUES (%(rule)s, %(labels)s, %(change)s, %(at)s, %(value)s, %(samples)s, %(threshold)s, %(condition)s)
"""

CLAIM_NOTIFICATION = """
INSERT INTO alert_notifications (key, receiver, rule, labels, event, created_at, body)
VALUES (%(key)s, %(receiver)s, %(rule)s, %(labels)s, %(event)s, %(created_at)s, %(body)s)
ON CONFLICT (key, receiver) DO NOTHING
RETURNING key
"""

RECORD_OUTCOME = """
UPDATE alert_notifications
SET status = %(status)s, attempts = %(attempts)s, http_status = %(http_status)s, error = %(error)s,
    finished_at = %(finished_at)s
WHERE key = %(key)s AND receiver = %(receiver)s
"""


@dataclass(frozen=True)
class Outgoing:
    """A notification this evaluation claimed, for one receiver."""

    key: str
    receiver: str
    body: dict[str, Any]


@dataclass(frozen=True)
class Outcome:
    key: str
    receiver: str
    status: str  # sent or failed
    attempts: int
    http_status: int | None
    error: str | None
    finished_at: datetime


def body(rule: Rule, notice: Notice) -> dict[str, Any]:
    """The generic JSON body of a notification (README, Alerts: webhook bodies)."""
    name, _, value = notice.labels.partition("=")
    labels = {name: value} if notice.labels else {}
    sides = notice.sides  # a relative rule's: value is the ratio, these its two spans
    return {
        "version": 1,
        "event": notice.event,
        "rule": rule.name,
        "watch": rule.watch,
        "labels": labels,
        "severity": rule.severity,
        "value": notice.value,
        "comparison": rule.comparison,
        "threshold": rule.threshold,
        "window": rule.window_text,
        "samples": notice.samples,
        "current": None if sides is None else {"value": sides.current, "samples": sides.current_samples},
        "baseline": None
        if sides is None
        else {"window": rule.baseline_text, "value": sides.baseline, "samples": sides.baseline_samples},
        "condition": rule.condition(),
        "firing_since": notice.fired_at.isoformat(),
        "at": notice.at.isoformat(),
        "key": notice.key,
    }


def stored(conn: psycopg.Connection[Any], rule: Rule) -> dict[str, State]:
    """The rule's stored states, by label set."""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(RULE_STATES, {"rule": rule.name}).fetchall()
    return {
        row["labels"]: State(
            row["phase"],
            row["since"],
            row["value"],
            row["samples"],
            row["fired_at"],
            row["notified_at"],
            row["repeats"],
        )
        for row in rows
    }


def steps(
    rule: Rule, states: dict[str, State], readings: Iterable[Reading], now: datetime
) -> dict[str, Step]:
    """Every label set's step: those measured, and those stored but not measured this time (nothing
    in the window: 0, with no samples). Pure."""
    measured = {r.labels: r for r in readings}
    for labels in states.keys() - measured.keys():
        measured[labels] = Reading(labels, 0.0, 0)
    return {labels: step(rule, states.get(labels), reading, now) for labels, reading in measured.items()}


def advance(
    conn: psycopg.Connection[Any], rule: Rule, readings: Sequence[Reading], now: datetime
) -> tuple[dict[str, Step], list[Outgoing]]:
    """Take the rule's step for ``readings`` at ``now`` and keep it: the steps by label set, and
    the notifications this call claimed, to send now (see the module's docstring). ``conn`` in
    autocommit mode."""
    with conn.transaction():
        conn.execute(LOCK_RULE, {"rule": rule.name})
        taken = steps(rule, stored(conn, rule), readings, now)
        with conn.cursor() as cur:
            cur.executemany(
                SAVE_STATE, [_state_row(rule, labels, s.state, now) for labels, s in taken.items()]
            )
            changes = [_change_row(rule, labels, s, now) for labels, s in taken.items() if s.change]
            if changes:
                cur.executemany(RECORD_CHANGE, changes)
        claimed = []
        for s in taken.values():
            if s.notice is None:
                continue
            sent = body(rule, s.notice)
            for receiver in rule.receivers:
                row = conn.execute(
                    CLAIM_NOTIFICATION,
                    {
                        "key": s.notice.key,
                        "receiver": receiver,
                        "rule": rule.name,
                        "labels": s.notice.labels,
                        "event": s.notice.event,
                        "created_at": now,
                        "body": Jsonb(sent),
                    },
                ).fetchone()
                if row is not None:
                    claimed.append(Outgoing(s.notice.key, receiver, sent))
    return taken, claimed


def record(conn: psycopg.Connection[Any], outcomes: Sequence[Outcome]) -> None:
    if not outcomes:
        return
    with conn.transaction(), conn.cursor() as cur:
        cur.executemany(RECORD_OUTCOME, [vars(o) for o in outcomes])


def _state_row(rule: Rule, labels: str, state: State, now: datetime) -> dict[str, Any]:
    return {
        "rule": rule.name,
        "labels": labels,
        "phase": state.phase,
        "since": state.since,
        "value": state.value,
        "samples": state.samples,
        "severity": rule.severity,
        "fired_at": state.fired_at,
        "notified_at": state.notified_at,
        "repeats": state.repeats,
        "evaluated_at": now,
    }


def _change_row(rule: Rule, labels: str, s: Step, now: datetime) -> dict[str, Any]:
    return {
        "rule": rule.name,
        "labels": labels,
        "change": s.change,
        "at": now,
        "value": s.state.value,
        "samples": s.state.samples,
        "threshold": rule.threshold,
        "condition": rule.condition(),
    }
