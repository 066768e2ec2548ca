"""One evaluation of every rule of a file: measure, step, keep, deliver.

``evaluate(..., send=True)`` is what the job does each minute (worker/maintenance/jobs.py);
``send=False`` is ``metrics-worker alerts check``: the same measures and steps against the stored
state, nothing written, nothing sent. A rule that cannot be measured (a kind not available yet,
the pipeline's Redis away, a failing statement) is reported and leaves its state alone; the
others go on. A rule taken out of the file is resolved if it was firing, then forgotten
(worker/alerts/retire.py). The notifications of every rule are sent together, after every rule
was stepped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg

from worker.alerts.delivery import deliver
from worker.alerts.evaluate import FIRING, Reading, Step
from worker.alerts.measure import measure_pipeline, measure_tables
from worker.alerts.relative import measure_relative
from worker.alerts.retire import retire
from worker.alerts.rules import Rule, RulesFile
from worker.alerts.store import Outcome, Outgoing, advance, record, steps, stored
from worker.errors import translate
from worker.schema import require_schema
from worker.status import UNAVAILABLE, PipelineStatus

log = logging.getLogger(__name__)


@dataclass
class Result:
    """One rule's evaluation: each label set's step (and what was measured), or why there is none."""

    rule: Rule
    steps: dict[str, Step] = field(default_factory=dict)
    readings: dict[str, Reading] = field(default_factory=dict)
    error: str | None = None


@dataclass
class Report:
    results: list[Result]
    outcomes: list[Outcome]
    seconds: float

    def details(self) -> dict[str, Any]:
        """What the job records (maintenance_runs.details) and logs."""
        return {
            "rules": len(self.results),
            "firing": sum(s.state.phase == FIRING for r in self.results for s in r.steps.values()),
            "sent": sum(o.status == "sent" for o in self.outcomes),
            "failed": sum(o.status == "failed" for o in self.outcomes),
            "not_evaluated": {r.rule.name: r.error for r in self.results if r.error},
        }


def evaluate(
    conn: psycopg.Connection[Any],
    rules: RulesFile,
    read_status: Callable[[], PipelineStatus] | None,
    now: datetime,
    *,
    send: bool = True,
    sleep: Callable[[float], None] = time.sleep,
) -> Report:
    """Evaluate every rule at ``now``. ``read_status``: the pipeline's view (worker/status.py), read
    once and only if a rule needs it; None: no Redis here (those rules are not evaluated).
    ``conn`` in autocommit mode."""
    clock = time.monotonic()
    require_schema(conn)  # else every rule fails on a missing table, with SQL and no fix
    status: PipelineStatus | str | None = None
    results: list[Result] = []
    outgoing: list[Outgoing] = []
    for rule in rules.rules:
        result = Result(rule)
        results.append(result)
        if rule.unavailable:
            result.error = rule.unavailable
            continue
        if rule.kind.source == "pipeline" and status is None:
            status = _status(read_status)
        try:
            if rule.kind.source == "pipeline":
                if isinstance(status, str):
                    result.error = status
                    continue
                assert status is not None
                readings = measure_pipeline(rule, status)
            elif rule.baseline is not None or rule.offset is not None:
                readings = measure_relative(conn, rule, now)
            else:
                readings = measure_tables(conn, rule, now)
            result.readings = {r.labels: r for r in readings}
            if send:
                result.steps, claimed = advance(conn, rule, readings, now)
                outgoing += claimed
            else:
                result.steps = steps(rule, stored(conn, rule), readings, now)
        except psycopg.Error as exc:
            result.error = f"{type(translate(exc)).__name__}: {' '.join(str(exc).split())}"[:500]
            log.warning("alert rule %r not evaluated: %s", rule.name, result.error)
    outcomes: list[Outcome] = []
    if send:
        outgoing += retire(conn, [r.name for r in rules.rules], rules.receivers.keys(), now)
        outcomes = deliver(outgoing, rules.receivers, sleep=sleep)
        record(conn, outcomes)
    return Report(results, outcomes, round(time.monotonic() - clock, 3))


def _status(read_status: Callable[[], PipelineStatus] | None) -> PipelineStatus | str:
    if read_status is None:
        return "no Redis to read the pipeline's status from (REDIS_URL)"
    try:
        return read_status()
    except UNAVAILABLE as exc:
        return f"the pipeline's status cannot be read: {' '.join(str(exc).split())}"[:500]
