"""Rules taken out of the file: a firing one is told resolved ("rule removed"), then forgotten.

A rule no longer in the rules file has state (``alert_state``) that no evaluation will step
again. Left alone it would stay firing on the dashboard and the gauge for ever; dropped silently,
the people told it fired would never hear it is over. So at the end of an evaluation each label
set of such a rule that is firing gets its resolved notification, sent to the receivers its
firing notification went to (those still in the file: a receiver taken out with it has no URL
left), with the firing's body, the last value measured and ``"reason": "rule removed"``; its
history records ``resolved``; then the rule's state goes (its history and notifications stay).
Under the rule's lock and with the resolved key claimed as any other (worker/alerts/store.py),
so two evaluations at once, or a restart, send it once.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from worker.alerts import evaluate
from worker.alerts.store import CLAIM_NOTIFICATION, LOCK_RULE, RECORD_CHANGE, Outgoing

REMOVED_RULES = """
SELECT DISTINCT rule FROM alert_state WHERE NOT (rule = ANY(%(rules)s)) ORDER BY rule
"""

REMOVED_STATES = """
SELECT labels, phase, value, samples, fired_at FROM alert_state WHERE rule = %(rule)s ORDER BY labels
"""

EPISODE_FIRING = """
SELECT receiver, body FROM alert_notifications
WHERE rule = %(rule)s AND labels = %(labels)s AND event = 'firing' AND created_at = %(fired_at)s
ORDER BY receiver
"""

EPISODE_CONDITION = """
SELECT threshold, condition FROM alert_history
WHERE rule = %(rule)s AND labels = %(labels)s AND change = 'firing' AND at = %(fired_at)s
ORDER BY id DESC
LIMIT 1
"""

FORGET_RULE = """
DELETE FROM alert_state WHERE rule = %(rule)s
"""


def retire(
    conn: psycopg.Connection[Any], names: Sequence[str], receivers: Collection[str], now: datetime
) -> list[Outgoing]:
    """Resolve and forget the rules with state that are not in ``names``; the resolved
    notifications this call claimed, to send now. ``receivers``: the file's. ``conn`` in
    autocommit mode."""
    removed = [row[0] for row in conn.execute(REMOVED_RULES, {"rules": list(names)}).fetchall()]
    claimed: list[Outgoing] = []
    for rule in removed:
        with conn.transaction():
            conn.execute(LOCK_RULE, {"rule": rule})
            for labels, phase, value, samples, fired_at in conn.execute(
                REMOVED_STATES, {"rule": rule}
            ).fetchall():
                if phase == evaluate.FIRING:
                    claimed += _resolve(conn, rule, labels, value, samples, fired_at, receivers, now)
            conn.execute(FORGET_RULE, {"rule": rule})
    return claimed


def _resolve(
    conn: psycopg.Connection[Any],
    rule: str,
    labels: str,
    value: float | None,
    samples: int,
    fired_at: datetime,
    receivers: Collection[str],
    now: datetime,
) -> list[Outgoing]:
    episode = {"rule": rule, "labels": labels, "fired_at": fired_at}
    fired = conn.execute(EPISODE_CONDITION, episode).fetchone()
    if fired is not None:
        threshold, condition = fired
        conn.execute(
            RECORD_CHANGE,
            {
                "rule": rule,
                "labels": labels,
                "change": "resolved",
                "at": now,
                "value": value,
                "samples": samples,
                "threshold": threshold,
                "condition": condition,
            },
        )
    key = evaluate.notice_key(rule, labels, fired_at, "resolved")
    claimed = []
    for receiver, firing in conn.execute(EPISODE_FIRING, episode).fetchall():
        if receiver not in receivers:
            continue
        body = {
            **firing,
            "event": "resolved",
            "value": value,  # the last measured, as a resolved's value is
            "samples": samples,
            "at": now.isoformat(),
            "key": key,
            "reason": "rule removed",
        }
        row = conn.execute(
            CLAIM_NOTIFICATION,
            {
                "key": key,
                "receiver": receiver,
                "rule": rule,
                "labels": labels,
                "event": "resolved",
                "created_at": now,
                "body": Jsonb(body),
            },
        ).fetchone()
        if row is not None:
            claimed.append(Outgoing(key, receiver, body))
    return claimed
