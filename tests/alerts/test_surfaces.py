"""Where people see the alerts: /v1/alerts and the gauge read the same views as the CLI; the job is
scheduled by the same rq cron config as reconcile; fifty rules take well under a second."""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
from rq.cron import CronScheduler
from starlette.exceptions import StarletteDeprecationWarning

with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

from tests.alerts.helpers import NOW, fill_sixty_days, rules_file, webhook_server
from tests.read.conftest import fill
from tests.read.events import Events, usage
from worker.alerts import views
from worker.alerts.cycle import evaluate
from worker.read.api import create_app

RULES = """
[receivers.hook]
url_env = "HOOK"
[[rules]]
name = "round errors"
watch = "round_error_share"
group_by = "model"
window = "15m"
threshold = 0.2
receivers = ["hook"]
[[rules]]
name = "slow today"
watch = "round_latency_p95"
window = "1d"
threshold = 100
"""


@pytest.fixture
def evaluated(conn: psycopg.Connection[Any], tmp_path: Path) -> Iterator[Path]:
    ev = Events()
    at = NOW - timedelta(minutes=1)
    for model, errors in (("a", 3), ("b", 0)):
        ev.session_started(f"s-{model}", model, at)
        for i in range(4):
            ev.round_started(f"{model}{i}", f"s-{model}", model, at)
            ev.round_completed(
                f"{model}{i}", f"s-{model}", at, usage(1, 1), status="error" if i < errors else "success"
            )
    fill(conn, ev.events)
    path = tmp_path / "alerts.toml"
    path.write_text(RULES)
    with webhook_server() as hooks:
        evaluate(conn, rules_file(RULES, {"HOOK": hooks.url + "/h"}), None, NOW)
        assert len(hooks.bodies("/h")) == 1
    yield path


def test_the_api_serves_rules_state_history_and_the_gauge(
    evaluated: Path, db_url: str, monkeypatch: pytest.MonkeyPatch, conn: psycopg.Connection[Any]
) -> None:
    monkeypatch.setenv("METRICS_ALERTS_FILE", str(evaluated))
    monkeypatch.delenv("METRICS_API_TOKENS", raising=False)
    with TestClient(create_app(db_url, redis_url="")) as client:
        body = client.get("/v1/alerts").json()
        assert body == views.alerts(conn, views_rules(evaluated)).model_dump(mode="json")
        assert [(s["rule"], s["labels"], s["phase"], s["value"]) for s in body["states"]] == [
            ("round errors", "model=a", "firing", 0.75),
            ("round errors", "model=b", "ok", 0.0),
            ("slow today", "", "ok", 0.0),  # over days: the latency roll-up (every round took 0 ms)
        ]
        assert body["rules"][1]["unavailable"] is None
        assert [(h["change"], h["labels"]) for h in body["history"]] == [("firing", "model=a")]
        assert [(n["event"], n["status"]) for n in body["notifications"]] == [("firing", "sent")]
        gauge = client.get("/v1/alerts/metrics")
        assert gauge.headers["content-type"].startswith("text/plain")
        assert (
            'metrics_alert_firing{labels="model=a",rule="round errors",severity="warning"} 1.0' in gauge.text
        )
        assert (
            'metrics_alert_firing{labels="model=b",rule="round errors",severity="warning"} 0.0' in gauge.text
        )
        evaluated.write_text(RULES.replace("threshold = 0.2", 'threshold = "x"'))
        broken = client.get("/v1/alerts").json()
        assert broken["rules"] == [] and "threshold: 'x' is not a number" in broken["rules_error"]
        assert broken["states"] == body["states"]


def views_rules(path: Path) -> Any:
    from worker.alerts.rules import load_rules

    return load_rules(path, need_urls=False)


def test_the_cron_config_schedules_alerts_when_a_rules_file_is_named(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("METRICS_MAINTENANCE_QUEUE", raising=False)
    scheduler = CronScheduler(connection=redis.Redis.from_url(redis_url))
    monkeypatch.delenv("METRICS_ALERTS_FILE", raising=False)
    scheduler.load_config_from_file("worker.maintenance.cron")
    assert "worker.maintenance.jobs.alerts" not in {job.func_name for job in scheduler.get_jobs()}
    monkeypatch.setenv("METRICS_ALERTS_FILE", "examples/alerts.toml")
    monkeypatch.setenv("METRICS_ALERTS_CRON", "*/2 * * * *")
    scheduler = CronScheduler(connection=redis.Redis.from_url(redis_url))
    scheduler.load_config_from_file("worker.maintenance.cron")
    jobs = {job.func_name: job for job in scheduler.get_jobs()}
    alerts = jobs["worker.maintenance.jobs.alerts"]
    assert (alerts.queue_name, alerts.cron) == ("maintenance", "*/2 * * * *")
    assert jobs["worker.maintenance.jobs.reconcile"].cron == "* * * * *"


def test_the_job_runs_one_at_a_time(conn: psycopg.Connection[Any], db_url: str, tmp_path: Path) -> None:
    """A second run while one holds the lock is skipped, and says so (worker/maintenance/runs.py)."""
    from worker.alerts.job import run_alerts
    from worker.runs import lock_key
    from worker.settings import AlertSettings

    path = tmp_path / "alerts.toml"
    path.write_text('[[rules]]\nname = "quiet"\nwatch = "silence"\nwindow = "15m"\n')
    settings = AlertSettings(database_url=db_url, alerts_file=str(path))
    schema = conn.execute("SELECT current_schema()").fetchone()
    assert schema
    with psycopg.connect(db_url, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (lock_key("alerts", schema[0]),))
        assert run_alerts(settings) == {"skipped": True}
    done = run_alerts(settings)
    assert (done["rules"], done["firing"], done["sent"]) == (1, 1, 0)


def test_fifty_rules_take_well_under_a_second(
    conn: psycopg.Connection[Any], capsys: pytest.CaptureFixture[str]
) -> None:
    """About 90,000 rows of each kind over 60 days; 50 rules of every kind and window, grouped and
    filtered (latency and cost by user over days from their roll-ups). The time is printed (the
    report's number) and held under a second."""
    fill_sixty_days(conn)
    kinds = [
        ("round_error_share", "model", 0.1),
        ("tool_error_share", "tool", 0.1),
        ("forward_error_share", "endpoint", 0.1),
        ("session_error_share", "model", 0.1),
        ("tokens", "model", 1000),
        ("round_latency_p95", "model", 1000),
        ("time_to_first_token_p95", "model", 1000),
        ("cost_usd", "user", 1),
    ]
    text = ""
    for n in range(50):
        watch, by, threshold = kinds[n % len(kinds)]
        window = ("15m", "1h", "1d", "7d")[n // len(kinds) % 4]  # every kind over every window
        group = f'group_by = "{by}"\n' if n >= 32 else ""
        text += f'[[rules]]\nname = "r{n}"\nwatch = "{watch}"\nwindow = "{window}"\n'
        text += f"threshold = {threshold}\n{group}"
    text += '[[rules]]\nname = "quiet"\nwatch = "silence"\nwindow = "15m"\n'
    rules = rules_file(text, {})
    now = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
    evaluate(conn, rules, None, now)  # the first: the rows of state are made
    clock = time.monotonic()
    report = evaluate(conn, rules, None, now + timedelta(minutes=1))
    took = time.monotonic() - clock
    assert not [r.error for r in report.results if r.error]
    with capsys.disabled():
        print(f"\n51 rules evaluated in {took:.3f}s (report: {report.seconds:.3f}s)")
    assert took < 1.0


def test_the_rq_job_reads_its_settings_from_the_environment(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, conn: psycopg.Connection[Any]
) -> None:
    from worker.maintenance import jobs

    path = tmp_path / "alerts.toml"
    path.write_text('[[rules]]\nname = "quiet"\nwatch = "silence"\nwindow = "15m"\n')
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.delenv("METRICS_ALERTS_FILE", raising=False)
    with pytest.raises(ValueError, match="METRICS_ALERTS_FILE: not set"):
        jobs.alerts()
    monkeypatch.setenv("METRICS_ALERTS_FILE", str(path))
    assert jobs.alerts()["firing"] == 1
    assert [s.phase for s in views.states(conn)] == ["firing"]


def test_list_shows_rules_masked_receivers_and_state(
    evaluated: Path, db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from worker.cli import main

    monkeypatch.setenv("HOOK", "https://hooks.example.com/services/T0/B0/SECRET")
    assert main(["alerts", "list", "--file", str(evaluated), "--database-url", db_url]) == 0
    out = capsys.readouterr().out
    assert out.splitlines() == [
        "receiver hook: webhook https://hooks.example.com/*** (timeout 5s, 3 attempts)",
        "round errors: round_error_share > 0.2 over 15m (per model; min 1 samples; for 0s; warning; to hook)",
        f"  model=a: firing since {NOW:%Y-%m-%d %H:%M:%S}Z, last value 0.75",
        f"  model=b: ok since {NOW:%Y-%m-%d %H:%M:%S}Z, last value 0",
        "slow today: round_latency_p95 > 100 over 1d (min 1 samples; for 0s; warning; to nobody)",
        f"  all: ok since {NOW:%Y-%m-%d %H:%M:%S}Z, last value 0",
    ]
    assert "SECRET" not in out


def test_prune_drops_history_and_notifications_older_than_the_retention(
    evaluated: Path, conn: psycopg.Connection[Any]
) -> None:
    from worker.maintenance.prune import prune

    conn.execute("UPDATE alert_history SET at = at - interval '100 days'")
    conn.execute("UPDATE alert_notifications SET created_at = created_at - interval '100 days'")
    counts = prune(
        conn, cutoff=NOW - timedelta(days=90), dedupe_before=NOW - timedelta(days=14), chunk_size=1
    )
    assert (counts["alert_history"], counts["alert_notifications"]) == (1, 1)
    assert views.history(conn) == [] and views.notifications(conn) == []
    assert len(views.states(conn)) == 3  # the state is now: kept


def test_a_bad_rules_file_fails_the_job_in_one_line_recorded(
    db_url: str, tmp_path: Path, conn: psycopg.Connection[Any]
) -> None:
    from worker.alerts.job import run_alerts
    from worker.alerts.rules import RulesError
    from worker.settings import AlertSettings

    path = tmp_path / "alerts.toml"
    path.write_text('[receivers.x]\nurl_env = "NOT_SET_ANYWHERE"\n')
    with pytest.raises(RulesError, match=r"receiver 'x': url_env: \$NOT_SET_ANYWHERE is not set"):
        run_alerts(AlertSettings(database_url=db_url, alerts_file=str(path)))
    row = conn.execute("SELECT details->>'error' FROM maintenance_runs WHERE job = 'alerts'").fetchone()
    assert row and row[0].startswith("RulesError: ") and "\n" not in row[0]
