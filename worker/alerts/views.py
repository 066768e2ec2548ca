"""What people see of the alerts, read-only: state, history, notifications.

Each rule and label set's state, the history of changes, the notifications with their outcome.

The one reading of these tables: ``metrics-worker alerts list|history`` print it, the API serves
it at /v1/alerts (and the Prometheus gauge at /v1/alerts/metrics), the dashboard draws it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg
from prometheus_client import CollectorRegistry, Gauge, generate_latest
from psycopg.rows import dict_row
from pydantic import BaseModel, ConfigDict

from worker.alerts.rules import Rule, RulesFile

STATES = """
SELECT rule, labels, phase, since, value, samples, severity, fired_at, evaluated_at
FROM alert_state
ORDER BY rule COLLATE "C", labels COLLATE "C"
"""

HISTORY = """
SELECT rule, labels, change, at, value, samples, threshold, condition
FROM alert_history
WHERE (%(rule)s::text IS NULL OR rule = %(rule)s)
ORDER BY at DESC, id DESC
LIMIT %(limit)s
"""

NOTIFICATIONS = """
SELECT rule, labels, event, receiver, created_at, status, attempts, http_status, error, finished_at
FROM alert_notifications
WHERE (%(rule)s::text IS NULL OR rule = %(rule)s)
ORDER BY created_at DESC, key COLLATE "C" DESC, receiver COLLATE "C"
LIMIT %(limit)s
"""


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, use_attribute_docstrings=True)


class AlertRule(_Model):
    name: str
    watch: str
    condition: str
    """e.g. ``tool_error_share > 0.2 over 15m``."""
    filters: dict[str, str]
    group_by: str | None
    min_samples: int
    hold: str
    """The rule's ``for``: how long it must hold before firing."""
    severity: str
    receivers: list[str]
    repeat: str | None
    offset: str | None = None
    """How long ago its window ends (``1d`` over ``1d``: yesterday); null: now."""
    baseline: str | None = None
    """A relative rule's: the span before the window its value is divided by (its value is the
    ratio), e.g. ``1d``; null: the value is compared with the threshold as it is."""
    unavailable: str | None
    """Why it cannot be evaluated yet (a kind, or a kind over days, whose data has not landed), e.g.
    "cost_usd is not available until ..."; null: it can."""


class AlertState(_Model):
    rule: str
    labels: str
    """'' for the rule as a whole, else e.g. ``model=gpt-4``."""
    phase: str
    """ok, pending (breaching, not yet for long enough) or firing."""
    since: datetime
    value: float | None
    samples: int
    severity: str
    fired_at: datetime | None
    evaluated_at: datetime


class AlertChange(_Model):
    rule: str
    labels: str
    change: str
    """pending, firing, resolved (was firing) or cleared (was pending)."""
    at: datetime
    value: float | None
    samples: int
    threshold: float
    condition: str


class AlertNotification(_Model):
    rule: str
    labels: str
    event: str
    receiver: str
    created_at: datetime
    status: str
    """sending, sent or failed."""
    attempts: int
    http_status: int | None
    error: str | None
    """The last attempt's, its URL masked."""
    finished_at: datetime | None


class Alerts(_Model):
    configured: bool
    """False: this process has no METRICS_ALERTS_FILE (the state and history are shown anyway)."""
    rules_error: str | None = None
    """The rules file's mistake, in one line, when it cannot be read."""
    rules: list[AlertRule]
    states: list[AlertState]
    history: list[AlertChange]
    notifications: list[AlertNotification]


def describe(rule: Rule) -> AlertRule:
    from contract.durations import format_duration

    return AlertRule(
        name=rule.name,
        watch=rule.watch,
        condition=rule.condition(),
        filters=dict(rule.filters),
        group_by=rule.group_by,
        min_samples=rule.min_samples,
        hold=format_duration(rule.hold),
        severity=rule.severity,
        receivers=list(rule.receivers),
        repeat=format_duration(rule.repeat) if rule.repeat else None,
        offset=format_duration(rule.offset) if rule.offset else None,
        baseline=rule.baseline_text,
        unavailable=rule.unavailable,
    )


def states(conn: psycopg.Connection[Any]) -> list[AlertState]:
    return [AlertState(**row) for row in _rows(conn, STATES, {})]


def history(conn: psycopg.Connection[Any], *, rule: str | None = None, limit: int = 50) -> list[AlertChange]:
    return [AlertChange(**row) for row in _rows(conn, HISTORY, {"rule": rule, "limit": limit})]


def notifications(
    conn: psycopg.Connection[Any], *, rule: str | None = None, limit: int = 50
) -> list[AlertNotification]:
    return [AlertNotification(**row) for row in _rows(conn, NOTIFICATIONS, {"rule": rule, "limit": limit})]


def alerts(
    conn: psycopg.Connection[Any], rules: RulesFile | None, *, rules_error: str | None = None, limit: int = 50
) -> Alerts:
    """Everything at once (the API's /v1/alerts, the dashboard's page)."""
    return Alerts(
        configured=rules is not None or rules_error is not None,
        rules_error=rules_error,
        rules=[describe(r) for r in rules.rules] if rules else [],
        states=states(conn),
        history=history(conn, limit=limit),
        notifications=notifications(conn, limit=limit),
    )


def prometheus(states: list[AlertState]) -> bytes:
    """``metrics_alert_firing{rule, labels, severity}``, 1 firing else 0, in Prometheus' text
    format (a registry of its own per call: the gauge is the table, read now)."""
    registry = CollectorRegistry()
    gauge = Gauge(
        "metrics_alert_firing",
        "Whether the alert rule (and label set) is firing: 1, else 0",
        ["rule", "labels", "severity"],
        registry=registry,
    )
    for s in states:
        gauge.labels(s.rule, s.labels, s.severity).set(1 if s.phase == "firing" else 0)
    return generate_latest(registry)


def _rows(conn: psycopg.Connection[Any], statement: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(statement, params, prepare=False)
        return cur.fetchall()
