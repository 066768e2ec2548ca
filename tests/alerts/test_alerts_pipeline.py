"""Alerts end to end: events published to the stream, applied by a burst worker, the job's
evaluation (worker/alerts/job.py ``run_alerts``) sending to a real HTTP server. Each threshold
crossed makes exactly one firing notification, each recovery exactly one resolved."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis

from contract.codec import STREAM_FIELD
from contract.keys import Keys
from tests.alerts.helpers import Hooks, rules_file, webhook_server
from tests.ingest.helpers import drain, publish, settings
from tests.read.events import Events, usage
from worker.alerts import views
from worker.alerts.cycle import evaluate
from worker.alerts.job import run_alerts
from worker.alerts.rules import number
from worker.settings import AlertSettings
from worker.status import read_status

MINUTE = timedelta(minutes=1)
README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.fixture
def hooks(monkeypatch: pytest.MonkeyPatch) -> Iterator[Hooks]:
    with webhook_server() as server:
        monkeypatch.setenv("HOOK_URL", server.url + "/hook/SECRET")
        monkeypatch.setenv("DOWN_URL", server.url + "/down")
        monkeypatch.setenv("SLACK_URL", server.url + "/slack")
        yield server


class Scenario:
    """One test's pipeline: its stream, its database, its rules file, and a clock it moves."""

    def __init__(self, db_url: str, redis_url: str, key_prefix: str, tmp: Path, rules: str) -> None:
        self.worker = settings(db_url, redis_url, key_prefix)
        self.client = redis.Redis.from_url(redis_url)
        self.path = tmp / "alerts.toml"
        self.path.write_text(rules)
        self.alerts = AlertSettings(
            database_url=db_url, redis_url=redis_url, stream=self.worker.stream, group="workers",
            alerts_file=str(self.path),
        )  # fmt: skip
        self.now = datetime.now(UTC).replace(microsecond=0)
        self.ev = Events()

    def push(self) -> None:
        """Publish what was built, and apply it with a burst worker."""
        publish(self.client, self.worker.stream, self.ev.events)
        self.ev.events.clear()
        drain(self.worker)

    def evaluate(self, after: timedelta = MINUTE) -> dict[str, Any]:
        self.now += after
        return run_alerts(self.alerts, now=self.now, one_shot=True)


RECEIVERS = """
[receivers.hook]
url_env = "HOOK_URL"
[receivers.slack]
kind = "slack"
url_env = "SLACK_URL"
[receivers.down]
url_env = "DOWN_URL"
attempts = 2
timeout = "1s"
"""


@pytest.fixture
def make(db_url: str, redis_url: str, key_prefix: str, tmp_path: Path, hooks: Hooks) -> Any:
    def build(rules: str) -> Scenario:
        return Scenario(db_url, redis_url, key_prefix, tmp_path, RECEIVERS + rules)

    return build


def rounds(s: Scenario, n: int, errors: int, model: str = "m1", prefix: str = "r") -> None:
    at = s.now - 2 * MINUTE
    s.ev.session_started(f"{prefix}-s", model, at)
    for i in range(n):
        rid = f"{prefix}{i}"
        s.ev.round_started(rid, f"{prefix}-s", model, at)
        s.ev.round_completed(rid, f"{prefix}-s", at, usage(5, 5), status="error" if i < errors else "success")


def events_of(hooks: Hooks, path: str = "/hook/SECRET") -> list[tuple[str, str]]:
    return [(b["event"], b["rule"]) for b in hooks.bodies(path)]


ERRORS = """
[[rules]]
name = "round errors"
watch = "round_error_share"
window = "15m"
threshold = 0.2
min_samples = 5
receivers = ["hook", "slack"]
"""


def test_error_share_fires_once_then_resolves_once(
    make: Any, hooks: Hooks, conn: psycopg.Connection[Any]
) -> None:
    s = make(ERRORS)
    rounds(s, 10, errors=5)
    s.push()
    details = s.evaluate()
    assert (details["firing"], details["sent"], details["failed"]) == (1, 2, 0)
    (firing,) = hooks.bodies("/hook/SECRET")
    assert {
        k: firing[k] for k in ("event", "rule", "value", "threshold", "comparison", "window", "samples")
    } == {
        "event": "firing",
        "rule": "round errors",
        "value": 0.5,
        "threshold": 0.2,
        "comparison": ">",
        "window": "15m",
        "samples": 10,
    }
    assert hooks.bodies("/slack")[0]["text"].startswith(
        "[FIRING] round errors (warning): round_error_share = 0.5"
    )
    for _ in range(3):  # still firing, a restart of the job each minute: nothing new
        assert s.evaluate()["sent"] == 0
    rounds(s, 40, errors=0, prefix="ok")  # 5 of 50: 10 %
    s.push()
    assert s.evaluate()["sent"] == 2
    assert s.evaluate()["sent"] == 0
    assert events_of(hooks) == [("firing", "round errors"), ("resolved", "round errors")]
    resolved = hooks.bodies("/hook/SECRET")[1]
    assert (resolved["value"], resolved["samples"], resolved["firing_since"]) == (
        0.1,
        50,
        firing["firing_since"],
    )
    assert [c.change for c in views.history(conn)] == ["resolved", "firing"]
    assert {(n.event, n.receiver, n.status) for n in views.notifications(conn)} == {
        ("firing", "hook", "sent"),
        ("firing", "slack", "sent"),
        ("resolved", "hook", "sent"),
        ("resolved", "slack", "sent"),
    }


def test_silence_of_one_model_fires_and_a_new_session_resolves_it(make: Any, hooks: Hooks) -> None:
    s = make(
        '[[rules]]\nname = "quiet"\nwatch = "silence"\nwindow = "15m"\nmodel = "m-quiet"\n'
        'receivers = ["hook"]\n'
        '[[rules]]\nname = "fleet quiet"\nwatch = "silence"\nwindow = "15m"\nreceivers = ["hook"]\n'
    )
    s.ev.session_started("old", "m-quiet", s.now - 20 * MINUTE)  # before the window
    s.ev.session_started("other", "m-busy", s.now - MINUTE)
    s.push()
    s.evaluate()
    (firing,) = hooks.bodies("/hook/SECRET")
    assert (firing["event"], firing["rule"], firing["value"], firing["comparison"], firing["threshold"]) == (
        "firing",
        "quiet",
        0,
        "<",
        1,
    )
    s.evaluate()
    s.ev.session_started("back", "m-quiet", s.now)
    s.push()
    s.evaluate()
    assert events_of(hooks) == [("firing", "quiet"), ("resolved", "quiet")]


def test_backlog_and_dead_letters_through_the_status_view(make: Any, hooks: Hooks) -> None:
    s = make(
        '[[rules]]\nname = "behind"\nwatch = "backlog"\nthreshold = 5\nreceivers = ["hook"]\n'
        '[[rules]]\nname = "dead"\nwatch = "dead_letters"\nthreshold = 0\nreceivers = ["hook"]\n'
    )
    for i in range(3):
        s.ev.session_started(f"s{i}", "m", s.now)
    s.push()  # creates the group; nothing waits
    s.evaluate()
    assert hooks.bodies("/hook/SECRET") == []
    for i in range(10):
        s.ev.session_started(f"w{i}", "m", s.now)
    publish(s.client, s.worker.stream, s.ev.events)
    s.ev.events.clear()
    s.client.xadd(s.worker.stream, {STREAM_FIELD: b"not json"})
    status = read_status(s.client, Keys(stream=s.worker.stream), "workers")
    assert status.undelivered == 11
    s.evaluate()
    assert events_of(hooks) == [("firing", "behind")]
    assert hooks.bodies("/hook/SECRET")[0]["value"] == 11
    drain(s.worker)  # applies ten, dead-letters one
    s.evaluate()
    sent = events_of(hooks)  # the two of one evaluation are sent at once: in either order
    assert sent[0] == ("firing", "behind") and sorted(sent[1:]) == [
        ("firing", "dead"),
        ("resolved", "behind"),
    ]
    s.client.delete(*Keys(stream=s.worker.stream).dead_letter_streams)  # the operator dealt with it
    s.evaluate()
    assert events_of(hooks)[-1] == ("resolved", "dead")
    assert len(hooks.bodies("/hook/SECRET")) == 4


def test_a_receiver_answering_500_is_retried_then_failed_and_other_rules_still_fire(
    make: Any, hooks: Hooks, conn: psycopg.Connection[Any]
) -> None:
    hooks.answers["/down"] = 500
    s = make(
        ERRORS.replace('receivers = ["hook", "slack"]', 'receivers = ["down"]')
        + '[[rules]]\nname = "quiet"\nwatch = "silence"\nwindow = "15m"\nmodel = "none"\n'
        'receivers = ["hook"]\n'
    )
    rounds(s, 10, errors=5)
    s.push()
    details = s.evaluate()
    assert (details["sent"], details["failed"]) == (1, 1)
    assert hooks.hits["/down"] == 2
    assert events_of(hooks) == [("firing", "quiet")]
    by_receiver = {n.receiver: n for n in views.notifications(conn)}
    down = by_receiver["down"]
    assert (down.status, down.attempts, down.http_status, down.error) == (
        "failed",
        2,
        500,
        f"{hooks.url}/*** answered 500",
    )
    assert by_receiver["hook"].status == "sent"
    assert s.evaluate()["sent"] + s.evaluate()["failed"] == 0  # a failed one is not sent again


def test_two_evaluations_at_once_send_one(make: Any, hooks: Hooks, db_url: str) -> None:
    s = make(ERRORS)
    urls = {"HOOK_URL": "/hook/SECRET", "SLACK_URL": "/s", "DOWN_URL": "/d"}
    rules = rules_file(s.path.read_text(), {k: hooks.url + v for k, v in urls.items()})
    rounds(s, 10, errors=5)
    s.push()
    start = threading.Barrier(8)
    reports = []

    def one(offset: int) -> None:
        with psycopg.connect(db_url, autocommit=True) as conn:
            start.wait()
            reports.append(evaluate(conn, rules, None, s.now + offset * timedelta(seconds=1)))

    threads = [threading.Thread(target=one, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(reports) == 8
    assert events_of(hooks) == [("firing", "round errors")]
    assert sum(o.status == "sent" for r in reports for o in r.outcomes) == 2  # hook and slack, once each


def test_check_evaluates_and_sends_nothing(
    make: Any, hooks: Hooks, capsys: pytest.CaptureFixture[str]
) -> None:
    from worker.cli import main

    s = make(
        ERRORS
        + '[[rules]]\nname = "slow today"\nwatch = "round_latency_p95"\nwindow = "1d"\nthreshold = 100\n'
    )
    rounds(s, 10, errors=5)
    s.push()
    argv = ["alerts", "check", "--file", str(s.path), "--database-url", s.alerts.database_url,
            "--redis-url", s.alerts.redis_url, "--stream", s.alerts.stream]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == (
        "round errors: round_error_share = 0.5 (10 samples), round_error_share > 0.2 over 15m: firing; "
        "would send firing to hook, slack"
    )
    assert out[1] == (  # over days: the hourly latency histograms (these rounds took 0 ms)
        "slow today: round_latency_p95 = 0 (10 samples), round_latency_p95 > 100 over 1d: ok"
    )
    assert out[2].startswith("2 rules evaluated in ") and out[2].endswith("; nothing sent")
    assert hooks.hits == {}
    assert main([*argv, "--json"]) == 0
    first, second = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    assert first["labels"] == {
        "all": {"phase": "firing", "value": 0.5, "samples": 10, "would_send": "firing"}
    }
    assert second["error"] is None and second["labels"] == {
        "all": {"phase": "ok", "value": 0.0, "samples": 10, "would_send": None}
    }
    s.evaluate()
    assert main(["alerts", "history", "--database-url", s.alerts.database_url]) == 0
    history = capsys.readouterr().out
    assert "round errors: firing at 0.5 (round_error_share > 0.2 over 15m)" in history
    assert "round errors: firing to hook sent after 1 attempt" in history


def test_a_restart_in_the_middle_of_a_firing_alert_sends_nothing_new(
    make: Any, hooks: Hooks, conn: psycopg.Connection[Any]
) -> None:
    """An evaluation killed between claiming a notification and sending it (the claim committed,
    nothing sent): the next evaluations find the rule firing and the notification claimed, and
    send nothing; the notification stays ``sending`` for people to see (at most once)."""
    from worker.alerts import measure, store
    from worker.alerts.rules import load_rules

    s = make(ERRORS)
    rules = load_rules(s.path)
    rounds(s, 10, errors=5)
    s.push()
    s.now += MINUTE
    (rule,) = rules.rules
    _, claimed = store.advance(conn, rule, measure.measure_tables(conn, rule, s.now), s.now)
    assert len(claimed) == 2  # then the process dies: nothing delivered
    for _ in range(3):
        assert s.evaluate()["sent"] == 0
    assert hooks.hits == {}
    assert {(n.event, n.status) for n in views.notifications(conn)} == {("firing", "sending")}
    assert [st.phase for st in views.states(conn)] == ["firing"]


def test_a_rule_taken_out_of_the_file_is_resolved_once_then_forgotten(
    make: Any, hooks: Hooks, conn: psycopg.Connection[Any]
) -> None:
    """Firing to hook and slack; the rule and the slack receiver taken out of the file: one
    resolved ("rule removed") to hook, the receiver still there; the state goes, the history
    stays; the next evaluations send nothing."""
    s = make(ERRORS)
    rounds(s, 10, errors=5)
    s.push()
    assert s.evaluate()["sent"] == 2
    rounds(s, 10, errors=10, prefix="worse")  # 15 of 20: still firing, a new last value
    s.push()
    assert s.evaluate()["sent"] == 0
    s.path.write_text(
        '[receivers.hook]\nurl_env = "HOOK_URL"\n'
        '[[rules]]\nname = "quiet"\nwatch = "silence"\nwindow = "15m"\nthreshold = 0\n'
    )
    assert s.evaluate()["sent"] == 1
    firing, resolved = hooks.bodies("/hook/SECRET")
    assert (resolved["event"], resolved["reason"], resolved["rule"]) == (
        "resolved",
        "rule removed",
        "round errors",
    )
    assert (resolved["firing_since"], resolved["condition"]) == (firing["firing_since"], firing["condition"])
    assert (resolved["value"], resolved["samples"]) == (0.75, 20)  # the last measured
    assert resolved["key"] != firing["key"] and len(hooks.bodies("/slack")) == 1
    assert [st.rule for st in views.states(conn)] == ["quiet"]
    assert [(c.rule, c.change) for c in views.history(conn)] == [
        ("round errors", "resolved"),
        ("round errors", "firing"),
    ]
    for _ in range(2):
        assert s.evaluate()["sent"] == 0
    assert len(hooks.bodies("/hook/SECRET")) == 2


def test_a_removed_rule_tells_slack_why(make: Any, hooks: Hooks) -> None:
    s = make(ERRORS)
    rounds(s, 10, errors=5)
    s.push()
    s.evaluate()
    s.path.write_text(RECEIVERS)
    assert s.evaluate()["sent"] == 2
    assert hooks.bodies("/slack")[1]["text"].startswith(
        "[RESOLVED] round errors (warning), rule removed: round_error_share = 0.5"
    )


@pytest.mark.acceptance
def test_alerts_run_from_a_system_cron(make: Any, hooks: Hooks, conn: psycopg.Connection[Any]) -> None:
    """The README's crontab line: ``metrics-worker alerts run`` evaluates and sends once, prints
    one JSON line; run again it sends nothing new; while the job holds the lock it skips."""
    import os
    import shlex
    import subprocess
    import sys

    from worker.runs import lock_key

    s = make(ERRORS)
    rounds(s, 10, errors=5)
    s.push()
    block = README.read_text().split("<!-- readme-alerts-cron -->", 1)[1].split("```", 2)[1]
    (entry,) = [x for x in block.splitlines()[1:] if x.strip() and not x.startswith("#")]
    argv = shlex.split(entry)[5:]  # after the five schedule fields
    assert argv[:3] == ["metrics-worker", "alerts", "run"]
    argv = [str(Path(sys.executable).parent / argv[0]), *argv[1:]]
    argv[argv.index("--file") + 1] = str(s.path)
    env = dict(os.environ, DATABASE_URL=s.alerts.database_url, REDIS_URL=s.alerts.redis_url,
               METRICS_STREAM=s.alerts.stream)  # fmt: skip

    def run() -> dict[str, Any]:
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        (printed,) = done.stdout.splitlines()
        return dict(json.loads(printed))

    first = run()
    assert (first["job"], first["rules"], first["firing"], first["sent"], first["failed"]) == (
        "alerts", 1, 1, 2, 0,
    )  # fmt: skip
    assert run()["sent"] == 0
    schema = conn.execute("SELECT current_schema()").fetchone()
    assert schema
    with psycopg.connect(s.alerts.database_url, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (lock_key("alerts", schema[0]),))
        assert run() == {"job": "alerts", "skipped": True}
    assert events_of(hooks) == [("firing", "round errors")]


LATENCY = """
[[rules]]
name = "slow"
watch = "round_latency_p95"
window = "15m"
threshold = 5000
min_samples = 5
receivers = ["hook"]
[[rules]]
name = "slow today"
watch = "round_latency_p95"
window = "1d"
threshold = 5000
min_samples = 5
receivers = ["hook"]
[[rules]]
name = "tool failures"
watch = "tool_error_share"
window = "15m"
threshold = 0.2
min_samples = 5
receivers = ["hook"]
"""


def timed_rounds(s: Scenario, prefix: str, n: int, seconds: float, failed_tools: int = 0) -> None:
    """``n`` rounds of ``seconds`` each, a tool call in each (the first ``failed_tools`` fail)."""
    at = s.now - 2 * MINUTE
    s.ev.session_started(f"{prefix}-s", "m1", at)
    for i in range(n):
        rid = f"{prefix}{i}"
        s.ev.round_started(rid, f"{prefix}-s", "m1", at)
        s.ev.tool_started(f"{rid}-t", rid, f"{prefix}-s", "search", at)
        s.ev.tool_completed(f"{rid}-t", rid, f"{prefix}-s", at, success=i >= failed_tools)
        s.ev.round_completed(rid, f"{prefix}-s", at + timedelta(seconds=seconds), usage(5, 5))


def test_p95_and_tool_failures_fire_once_and_resolve_once(make: Any, hooks: Hooks) -> None:
    """A model's p95 goes from 1 s to 20 s (over 15 minutes from the rounds, over today from the
    hourly histograms: within 1.083%) while half its tool calls fail; then 200 quick rounds with
    good tools bring both back."""
    s = make(LATENCY)
    timed_rounds(s, "quick", 10, 1.0)
    s.push()
    assert s.evaluate()["sent"] == 0
    timed_rounds(s, "slow", 10, 20.0, failed_tools=10)  # 20 rounds: the 19th of them is 20 s
    s.push()
    assert s.evaluate()["sent"] == 3
    assert s.evaluate()["sent"] == 0
    fired = {b["rule"]: b for b in hooks.bodies("/hook/SECRET")}
    assert set(fired) == {"slow", "slow today", "tool failures"}
    assert (fired["slow"]["value"], fired["slow"]["samples"]) == (20_000, 20)
    assert (
        abs(fired["slow today"]["value"] - 20_000) <= 20_000 * 0.01083
        and fired["slow today"]["samples"] == 20
    )
    assert (fired["tool failures"]["value"], fired["tool failures"]["samples"]) == (0.5, 20)
    timed_rounds(s, "back", 200, 1.0)  # 220 rounds: the 209th is 1 s; 10 tool failures in 220
    s.push()
    assert s.evaluate()["sent"] == 3
    assert s.evaluate()["sent"] == 0
    sent = events_of(hooks)
    assert sorted(sent[3:]) == [
        ("resolved", "slow"),
        ("resolved", "slow today"),
        ("resolved", "tool failures"),
    ]
    assert len(sent) == 6


RELATIVE = """
[[rules]]
name = "p95 doubles"
watch = "round_latency_p95"
group_by = "model"
window = "1h"
baseline = "1d"
comparison = ">="
threshold = 2
min_samples = 10
receivers = ["hook", "slack"]
"""


def rounds_at(
    s: Scenario, prefix: str, n: int, seconds: float, at: datetime, model: str = "m1", failed_tools: int = 0
) -> None:
    """``n`` rounds of ``model`` started at ``at``, ``seconds`` each, a tool call in each (the
    first ``failed_tools`` fail)."""
    s.ev.session_started(f"{prefix}-s", model, at)
    for i in range(n):
        rid = f"{prefix}{i}"
        s.ev.round_started(rid, f"{prefix}-s", model, at)
        s.ev.tool_started(f"{rid}-t", rid, f"{prefix}-s", "search", at)
        s.ev.tool_completed(f"{rid}-t", rid, f"{prefix}-s", at, success=i >= failed_tools)
        s.ev.round_completed(rid, f"{prefix}-s", at + timedelta(seconds=seconds), usage(5, 5))


def test_a_models_p95_doubling_against_its_day_before_fires_once_and_resolves_once(
    make: Any, hooks: Hooks
) -> None:
    """Over the day before the last hour both models took 1 s; m1's last hour goes to 3 s (the
    ratio ~3, from the histograms: each side within 1.083%), m2's stays at 1 s; then quick rounds
    bring m1 back."""
    s = make(RELATIVE)
    hours_ago = s.now - timedelta(hours=3)
    rounds_at(s, "b1-", 20, 1.0, hours_ago)
    rounds_at(s, "b2-", 20, 1.0, hours_ago, model="m2")
    rounds_at(s, "old-", 20, 30.0, s.now - timedelta(hours=30))  # before the baseline: not counted
    rounds_at(s, "q1-", 10, 1.0, s.now - 2 * MINUTE)
    rounds_at(s, "q2-", 10, 1.0, s.now - 2 * MINUTE, model="m2")
    s.push()
    assert s.evaluate()["sent"] == 0
    rounds_at(s, "slow-", 10, 3.0, s.now - MINUTE)  # m1's hour: 10 at 1 s, 10 at 3 s: p95 3 s
    s.push()
    assert s.evaluate()["sent"] == 2
    assert s.evaluate()["sent"] == 0
    (firing,) = hooks.bodies("/hook/SECRET")
    assert (firing["event"], firing["labels"], firing["samples"]) == ("firing", {"model": "m1"}, 20)
    current, baseline = firing["current"], firing["baseline"]
    assert abs(current["value"] - 3000) <= 3000 * 0.01083 and current["samples"] == 20
    assert abs(baseline["value"] - 1000) <= 1000 * 0.01083
    assert (baseline["window"], baseline["samples"]) == ("1d", 20)
    assert firing["value"] == current["value"] / baseline["value"]
    assert firing["condition"] == "round_latency_p95 >= 2 x baseline over 1h (baseline: the 1d before)"
    slack = hooks.bodies("/slack")[0]["text"]
    assert slack.startswith(
        f"[FIRING] p95 doubles (warning): round_latency_p95 = {number(firing['value'])} x baseline "
        "(>= 2 x baseline over 1h, 20 samples) model=m1; "
        f"{number(current['value'])} over 1h, {number(baseline['value'])} over the 1d before (20 samples); "
    )
    rounds_at(s, "back-", 200, 1.0, s.now - MINUTE)
    s.push()
    assert s.evaluate()["sent"] == 2
    assert s.evaluate()["sent"] == 0
    assert events_of(hooks) == [("firing", "p95 doubles"), ("resolved", "p95 doubles")]
    resolved = hooks.bodies("/hook/SECRET")[1]
    assert resolved["labels"] == {"model": "m1"} and resolved["value"] < 1.1


TOOL_SPIKE = """
[[rules]]
name = "tool failures spike"
watch = "tool_error_share"
window = "15m"
baseline = "1d"
comparison = ">="
threshold = 3
min_samples = 10
receivers = ["hook"]
"""


def test_tool_failures_spiking_against_their_baseline_fire_once_and_resolve_once(
    make: Any, hooks: Hooks, capsys: pytest.CaptureFixture[str]
) -> None:
    """5 % of tool calls failed over the day before the window; 5 % in the window is nothing, 22.5 %
    fires (4.5 x), 6.4 % resolves. ``alerts check`` says both values, and why there is no ratio."""
    from worker.cli import main

    s = make(
        TOOL_SPIKE + '[[rules]]\nname = "new tool"\nwatch = "tool_error_share"\nwindow = "15m"\n'
        'baseline = "1d"\nthreshold = 3\ntool = "fresh"\n'
    )
    rounds_at(s, "base-", 100, 1.0, s.now - timedelta(hours=2), failed_tools=5)
    rounds_at(s, "now-", 20, 1.0, s.now - 2 * MINUTE, failed_tools=1)
    s.push()
    assert s.evaluate()["sent"] == 0
    rounds_at(s, "bad-", 20, 1.0, s.now - MINUTE, failed_tools=8)
    s.push()
    argv = ["alerts", "check", "--file", str(s.path), "--database-url", s.alerts.database_url,
            "--redis-url", s.alerts.redis_url, "--stream", s.alerts.stream]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == (
        "tool failures spike: tool_error_share = 4.5 x baseline (0.225 over 15m, 40 samples; 0.05 over "
        "the 1d before, 100 samples), tool_error_share >= 3 x baseline over 15m (baseline: the 1d "
        "before): firing; would send firing to hook"
    )
    assert out[1] == (
        "new tool: tool_error_share: no ratio (0 over 15m, 0 samples; 0 over the 1d before, 0 samples): "
        "0 samples in the window, fewer than min_samples 1 (no alert), tool_error_share > 3 x baseline "
        "over 15m (baseline: the 1d before): ok"
    )
    assert main([*argv, "--json"]) == 0
    spike = json.loads(capsys.readouterr().out.splitlines()[0])["labels"]["all"]
    assert (spike["current"], spike["baseline"], spike["no_ratio"]) == (
        {"value": 0.225, "samples": 40},
        {"window": "1d", "value": 0.05, "samples": 100},
        None,
    )
    assert hooks.hits == {}
    assert s.evaluate()["sent"] == 1
    assert s.evaluate()["sent"] == 0
    (firing,) = hooks.bodies("/hook/SECRET")
    assert (firing["rule"], firing["value"], firing["samples"]) == ("tool failures spike", 4.5, 40)
    assert firing["current"] == {"value": 0.225, "samples": 40}
    assert firing["baseline"] == {"window": "1d", "value": 0.05, "samples": 100}
    rounds_at(s, "good-", 100, 1.0, s.now - MINUTE)  # 9 of 140: 6.4 %, 1.29 x
    s.push()
    assert s.evaluate()["sent"] == 1
    assert s.evaluate()["sent"] == 0
    assert events_of(hooks) == [("firing", "tool failures spike"), ("resolved", "tool failures spike")]
    assert hooks.bodies("/hook/SECRET")[1]["current"] == {"value": 9 / 140, "samples": 140}


def test_yesterdays_spend_over_budget_fires_once_and_resolves_when_the_day_moves_on(
    make: Any, hooks: Hooks
) -> None:
    """``window = "1d"``, ``offset = "1d"``: yesterday's whole UTC date. $6.50 yesterday against a
    $5 budget fires once (today's $3.25 does not count); a day later yesterday is that day, with
    nothing spent: resolved once."""
    from tests.engine.costs import priced_round

    s = make(
        '[[rules]]\nname = "yesterday over budget"\nwatch = "cost_usd"\nwindow = "1d"\noffset = "1d"\n'
        'threshold = 5\nreceivers = ["hook"]\n'
    )
    yesterday = datetime.combine(s.now.date() - timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    s.ev.events += priced_round(yesterday + timedelta(hours=3), "y1", "ys")
    s.ev.events += priced_round(yesterday + timedelta(hours=23, minutes=59), "y2", "ys")
    today = yesterday + timedelta(days=1)
    s.ev.events += priced_round(today + (s.now - today) / 2, "t1", "ts")  # today: not yesterday's
    s.push()
    assert s.evaluate()["sent"] == 1
    assert s.evaluate()["sent"] == 0
    (firing,) = hooks.bodies("/hook/SECRET")
    assert (firing["value"], firing["samples"], firing["window"]) == (6.5, 2, "1d offset 1d")
    assert firing["condition"] == "cost_usd > 5 over 1d offset 1d"
    assert s.evaluate(after=timedelta(days=1))["sent"] == 1
    assert events_of(hooks) == [("firing", "yesterday over budget"), ("resolved", "yesterday over budget")]
    assert (hooks.bodies("/hook/SECRET")[1]["value"], hooks.bodies("/hook/SECRET")[1]["samples"]) == (3.25, 1)
