"""``metrics-worker alerts list|check|history|run``: the alert rules, for people and a system cron.

The rules with their state, what would fire now, what happened; and one run now.

``check`` is for trying a rules file: it measures every rule now and prints what each would do
against the stored state, writing nothing and sending nothing (receivers' URLs need not be set).
``run`` is one run of what the scheduled job does (worker/alerts/job.py): evaluate, keep, send,
under the same lock, for a system cron instead of ``rq cron``; it prints one JSON line.
"""

from __future__ import annotations

import argparse
import contextlib
import json
from datetime import UTC, datetime
from typing import Any

from contract.connect import Client, connect
from worker.alerts import views
from worker.alerts.cycle import Report, evaluate
from worker.alerts.evaluate import Reading, why_no_ratio
from worker.alerts.job import run_alerts
from worker.alerts.rules import Rule, RulesFile, load_rules, number
from worker.database import connect as connect_database
from worker.flags import BOTH, DATABASE, add_connections, settings_from
from worker.settings import AlertSettings
from worker.status import PipelineStatus, read_status


def configure_parser(sub: Any) -> None:
    """Add ``alerts`` and its commands to the top parser (worker/cli.py)."""
    alerts = sub.add_parser(
        "alerts",
        help="alert rules: list them with their state, check what would fire now, show the history",
        description="The alert rules of METRICS_ALERTS_FILE (README, Alerts). The maintenance job "
        "evaluates them every minute and sends the notifications; run does it once (for a system "
        "cron), the other commands send nothing.",
    )
    commands = alerts.add_subparsers(dest="alerts_command", required=True, metavar="COMMAND")
    listing = commands.add_parser(
        "list",
        help="the rules, their receivers (URLs masked) and their state",
        description="Print the rules file's receivers (URLs masked) and rules, each with its state per "
        "label set (ok, pending or firing, since when, the last value) as the job last kept it.",
    )
    check = commands.add_parser(
        "check",
        help="measure every rule now and print what would fire or resolve; sends nothing",
        description="Measure every rule now and print, per rule and label set, the value, the samples "
        "and what it would do against the stored state. Writes nothing and sends nothing: for trying "
        "a rules file (the receivers' URL variables need not be set).",
    )
    once = commands.add_parser(
        "run",
        help="evaluate every rule now and send what fires or resolves, once (for a system cron)",
        description="One run of what the scheduled alerts job does: measure every rule, keep the "
        "state, send the notifications, under the same lock (a run while another holds it is skipped "
        "and says so) and against the same state, so a notification is never sent twice. Prints one "
        "JSON line: rules, firing, sent, failed, not evaluated.",
    )
    for parser in (listing, check, once):
        parser.add_argument(
            "--file",
            dest="alerts_file",
            metavar="PATH",
            help="the rules file, TOML [env METRICS_ALERTS_FILE, default none]",
        )
    add_connections(listing, DATABASE)
    add_connections(check, BOTH)
    add_connections(once, BOTH)
    once.set_defaults(handler=run_once)
    check.add_argument("--json", action="store_true", help="one JSON object per rule")
    listing.set_defaults(handler=list_rules)
    check.set_defaults(handler=check_rules)
    past = commands.add_parser(
        "history",
        help="the latest changes of state and notifications, newest first",
        description="Print the latest changes of state (pending, firing, resolved, cleared) and then "
        "the latest notifications with their outcome (sent, failed with the reason, sending).",
    )
    add_connections(past, DATABASE)
    past.add_argument("--rule", metavar="NAME", help="only this rule")
    past.add_argument("--limit", type=int, default=20, metavar="N", help="at most N of each (default 20)")
    past.set_defaults(handler=show_history)


def _rules(settings: AlertSettings) -> RulesFile:
    if not settings.alerts_file:
        raise ValueError(
            "METRICS_ALERTS_FILE (--file): not set; name the rules file (e.g. examples/alerts.toml)"
        )
    return load_rules(settings.alerts_file, need_urls=False)


def list_rules(args: argparse.Namespace) -> int:
    settings = settings_from(args, AlertSettings)
    rules = _rules(settings)
    for r in rules.receivers.values():
        print(
            f"receiver {r.name}: {r.kind} {r.masked_url} "
            f"(timeout {r.timeout.total_seconds():g}s, {r.attempts} attempts)"
        )
    with connect_database(settings.database_url, settings.connect_timeout) as conn:
        by_rule: dict[str, list[views.AlertState]] = {}
        for s in views.states(conn):
            by_rule.setdefault(s.rule, []).append(s)
    for rule in rules.rules:
        d = views.describe(rule)
        extra = [f"{k}={v}" for k, v in d.filters.items()]
        extra += [f"per {d.group_by}"] if d.group_by else []
        extra += (
            [f"min {d.min_samples} samples"]
            if rule.kind.source == "tables" and rule.watch != "silence"
            else []
        )
        extra += [f"for {d.hold}", d.severity, "to " + (", ".join(d.receivers) or "nobody")]
        extra += [f"repeat {d.repeat}"] if d.repeat else []
        print(f"{rule.name}: {d.condition} ({'; '.join(extra)})")
        if d.unavailable:
            print(f"  {d.unavailable}")
        for s in by_rule.get(rule.name, []):
            print(f"  {s.labels or 'all'}: {s.phase} since {_when(s.since)}, last value {_value(s.value)}")
    return 0


def check_rules(args: argparse.Namespace) -> int:
    settings = settings_from(args, AlertSettings)
    rules = _rules(settings)
    with (
        contextlib.ExitStack() as stack,
        connect_database(settings.database_url, settings.connect_timeout) as conn,
    ):
        clients: list[Client] = []

        def pipeline() -> PipelineStatus:
            if not clients:
                timeout = settings.connect_timeout.total_seconds()
                clients.append(
                    connect(settings.redis_url, socket_timeout=timeout, socket_connect_timeout=timeout)
                )
                stack.callback(clients[0].close)
            return read_status(clients[0], settings.keys, settings.group, latest=0)

        report = evaluate(conn, rules, pipeline, datetime.now(UTC), send=False)
    for line in _check_lines(report, as_json=args.json):
        print(line)
    return 0


def _check_lines(report: Report, *, as_json: bool) -> list[str]:
    lines = []
    for result in report.results:
        rule = result.rule
        if as_json:
            steps = {
                labels or "all": {
                    "phase": s.state.phase,
                    "value": s.state.value,
                    "samples": s.state.samples,
                    "would_send": s.notice.event if s.notice else None,
                    **_relative_json(rule, result.readings.get(labels)),
                }
                for labels, s in result.steps.items()
            }
            lines.append(
                json.dumps(
                    {"rule": rule.name, "condition": rule.condition(), "error": result.error, "labels": steps}
                )
            )
            continue
        if result.error:
            lines.append(f"{rule.name}: not evaluated: {result.error}")
            continue
        if not result.steps:
            lines.append(f"{rule.name}: {rule.condition()}: nothing measured in the window")
        for labels, s in sorted(result.steps.items()):
            who = f" [{labels}]" if labels else ""
            would = (
                f"; would send {s.notice.event} to {', '.join(rule.receivers) or 'nobody'}"
                if s.notice
                else ""
            )
            counted = rule.kind.source == "tables" and rule.watch != "silence"
            samples = f" ({s.state.samples} samples)" if counted else ""
            if rule.baseline is not None:
                lines.append(
                    f"{rule.name}{who}: {_relative(rule, result.readings.get(labels))}, "
                    f"{rule.condition()}: {s.state.phase}{would}"
                )
                continue
            lines.append(
                f"{rule.name}{who}: {rule.watch} = {_value(s.state.value)}{samples}, "
                f"{rule.condition()}: {s.state.phase}{would}"
            )
    lines.append(f"{len(report.results)} rules evaluated in {report.seconds:.3f}s; nothing sent")
    return lines if not as_json else lines[:-1]


def _relative(rule: Rule, reading: Reading | None) -> str:
    """``round_latency_p95 = 2.1 x baseline (1000 over 1h, 30 samples; 476 over the 1d before, 40
    samples)``, or why there is no ratio."""
    sides = reading.sides if reading else None
    if reading is None or sides is None:
        return f"{rule.watch}: no ratio: nothing measured in the window or the baseline (no alert)"
    spans = (
        f"{_value(sides.current)} over {rule.window_text}, {sides.current_samples} samples; "
        f"{_value(sides.baseline)} over the {rule.baseline_text} before, {sides.baseline_samples} samples"
    )
    why = why_no_ratio(rule, reading)
    if why:
        return f"{rule.watch}: no ratio ({spans}): {why} (no alert)"
    return f"{rule.watch} = {_value(reading.value)} x baseline ({spans})"


def _relative_json(rule: Rule, reading: Reading | None) -> dict[str, Any]:
    if rule.baseline is None:
        return {}
    sides = reading.sides if reading else None
    return {
        "current": None if sides is None else {"value": sides.current, "samples": sides.current_samples},
        "baseline": None
        if sides is None
        else {"window": rule.baseline_text, "value": sides.baseline, "samples": sides.baseline_samples},
        "no_ratio": why_no_ratio(rule, reading) if reading else "nothing measured",
    }


def run_once(args: argparse.Namespace) -> int:
    details = run_alerts(settings_from(args, AlertSettings), one_shot=True)
    print(json.dumps({"job": "alerts", **details}, sort_keys=True))
    return 0


def show_history(args: argparse.Namespace) -> int:
    settings = settings_from(args, AlertSettings)
    with connect_database(settings.database_url, settings.connect_timeout) as conn:
        changes = views.history(conn, rule=args.rule, limit=args.limit)
        sent = views.notifications(conn, rule=args.rule, limit=args.limit)
    for c in changes:
        who = f" [{c.labels}]" if c.labels else ""
        print(f"{_when(c.at)} {c.rule}{who}: {c.change} at {_value(c.value)} ({c.condition})")
    for n in sent:
        who = f" [{n.labels}]" if n.labels else ""
        how = f"{n.status} after {n.attempts} attempt{'s' if n.attempts != 1 else ''}"
        why = f": {n.error}" if n.error else ""
        print(f"{_when(n.created_at)} {n.rule}{who}: {n.event} to {n.receiver} {how}{why}")
    if not changes and not sent:
        print("no alert history yet")
    return 0


def _when(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _value(value: float | None) -> str:
    return "unknown" if value is None else number(value)
