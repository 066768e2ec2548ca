"""The issue's "Done when", run for real: a person writes a five-line rules file and is told in
Slack within two minutes when today's spend goes over budget, once, and once more when it is over.

Everything is the deployed thing: the producer library publishes to Redis, a ``metrics-worker
run`` process applies and prices, ``rq cron worker.maintenance.cron`` queues the alerts job every
minute (METRICS_ALERTS_CRON at its default, ``* * * * *``, the real cadence), an ``rq worker``
runs it, and an HTTP server in this test stands in for Slack's incoming webhook. Crossing: a
second $3.25 round takes today's spend from $3.25 to $6.50, over the $5 budget; recovery: that
session is forgotten (``metrics-worker forget``), back to $3.25. The delays from the moment the
crossing (and the recovery) was in PostgreSQL to the Slack message are printed and held under
two minutes; at most about 65 s each (a minute's cron plus the run), so the drill takes about two.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis

from producer import Publisher
from tests.alerts.helpers import webhook_server

pytestmark = pytest.mark.drill

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

#: The five lines of the rule, and where it goes.
RULES = """\
[receivers.slack]
kind = "slack"
url_env = "SLACK_WEBHOOK_URL"

[[rules]]
name = "spend today"
watch = "cost_usd"
window = "1d"
threshold = 5
receivers = ["slack"]
"""
BUDGET_MINUTES = 2


def wait_for(what: str, check: Callable[[], Any], within: float, every: float = 0.1) -> Any:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(every)
    pytest.fail(f"{what}: not within {within:.0f}s")


class Started:
    """The long-running processes of the drill, stopped (by their ids) at the end."""

    def __init__(self) -> None:
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        p = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.processes.append(p)
        return p

    def stop(self) -> None:
        for p in self.processes:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.processes:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:  # rq's worker can sit a minute in its pubsub thread
                p.kill()
                p.wait(10)
            if p.stderr:
                p.stderr.close()


@pytest.fixture
def queue_name(key_prefix: str, redis_url: str) -> Iterator[str]:
    """A maintenance queue of this test's own; its keys go afterwards."""
    name = f"alerts-drill-{key_prefix.split(':')[-1]}"
    yield name
    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter(f"rq:*{name}*"):
        client.delete(key)
    client.close()


def spend(conn: psycopg.Connection[Any]) -> float:
    row = conn.execute("SELECT COALESCE(sum(cost_usd), 0)::float8 FROM round_metrics").fetchone()
    return float(row[0]) if row else 0.0


def priced_round(pub: Publisher, session_id: str) -> None:
    """A session with one gpt-4o round: 800k prompt tokens x $2.50 + 200k cached x $1.25 + 100k
    completion x $10 per million = $3.25."""
    with pub.session("gpt-4o", session_id, provider="openai") as session, session.round() as rnd:
        rnd.usage(prompt_tokens=1_000_000, completion_tokens=100_000, cache_read_tokens=200_000)


def test_today_s_spend_over_budget_reaches_slack_within_two_minutes_once_then_resolves(
    conn: psycopg.Connection[Any],
    db_url: str,
    redis_url: str,
    key_prefix: str,
    queue_name: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    rules = tmp_path / "alerts.toml"
    rules.write_text(RULES)
    assert len([line for line in RULES.split("[[rules]]")[1].splitlines() if line.strip()]) == 5
    stream = f"{key_prefix}:events"
    started = Started()
    with webhook_server() as slack:
        env = dict(
            os.environ,
            DATABASE_URL=db_url,
            REDIS_URL=redis_url,
            METRICS_STREAM=stream,
            METRICS_MAINTENANCE_QUEUE=queue_name,
            METRICS_ALERTS_FILE=str(rules),
            SLACK_WEBHOOK_URL=f"{slack.url}/services/T000/B000/SECRET",
        )
        env.pop("METRICS_ALERTS_CRON", None)  # the default: every minute
        try:
            started.start([str(BIN / "metrics-worker"), "run"], env)
            started.start([str(BIN / "rq"), "cron", "worker.maintenance.cron", "--url", redis_url], env)
            started.start([str(BIN / "rq"), "worker", queue_name, "--url", redis_url], env)
            with Publisher(redis_url=redis_url, stream=stream) as pub:
                priced_round(pub, "under-budget")
                pub.flush()
                wait_for("the first $3.25 in PostgreSQL", lambda: spend(conn) == 3.25, 60)
                priced_round(pub, "over-budget")
                pub.flush()
                wait_for("$6.50 in PostgreSQL", lambda: spend(conn) == 6.5, 60, every=0.05)
            crossed = time.time()
            path = "/services/T000/B000/SECRET"
            wait_for("the firing message in Slack", lambda: slack.bodies(path), 60 * BUDGET_MINUTES)
            fired = slack.times(path)[0] - crossed
            forget = subprocess.run(
                [str(BIN / "metrics-worker"), "forget", "--session", "over-budget"],
                env=env,
                capture_output=True,
                timeout=60,
                check=False,
            )
            assert forget.returncode == 0, forget.stderr.decode()
            assert spend(conn) == 3.25
            recovered = time.time()
            wait_for("the resolved message", lambda: len(slack.bodies(path)) >= 2, 60 * BUDGET_MINUTES)
            resolved = slack.times(path)[1] - recovered
            time.sleep(1)  # anything else already on its way would be here by now
            messages = [b["text"] for b in slack.bodies(path)]
        finally:
            started.stop()
    with capsys.disabled():
        print(
            f"\nalerts drill: crossing -> Slack {fired:.1f}s, recovery -> Slack {resolved:.1f}s "
            f"(budget {60 * BUDGET_MINUTES}s; cron every minute); {runs(conn)} alerts runs"
        )
    assert fired < 60 * BUDGET_MINUTES and resolved < 60 * BUDGET_MINUTES
    assert len(messages) == 2, messages
    assert messages[0].startswith(
        "[FIRING] spend today (warning): cost_usd = 6.5 (> 5 over 1d, 2 samples); firing since "
    )
    assert messages[1].startswith(
        "[RESOLVED] spend today (warning): cost_usd = 3.25 (> 5 over 1d, 1 samples)"
    )
    assert {(n, s) for n, s in conn.execute("SELECT event, status FROM alert_notifications")} == {
        ("firing", "sent"),
        ("resolved", "sent"),
    }


def runs(conn: psycopg.Connection[Any]) -> int:
    """Alerts runs that evaluated (not skipped, not failed)."""
    row = conn.execute(
        "SELECT count(*) FROM maintenance_runs WHERE job = 'alerts' AND details ? 'rules'"
    ).fetchone()
    return int(row[0]) if row else 0
