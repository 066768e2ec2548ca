"""Scheduling for real: the ``rq cron`` config, the scheduler process enqueuing onto the queue, a
burst ``rq worker`` running the jobs against the test database; and the one-shot commands."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
import redis
from rq import Queue
from rq.cron import CronScheduler

from contract.events import RoundStarted, SessionMessageCount, SessionStarted
from tests.maintenance.helpers import runs
from worker.cli import main as worker_main
from worker.engine.apply import apply_events
from worker.runs import lock_key

ROOT = Path(__file__).resolve().parents[2]
RQ = str(Path(sys.executable).parent / "rq")
LONG_AGO = datetime(2026, 1, 5, 8, tzinfo=UTC)


def _stale(conn: psycopg.Connection) -> None:
    """A session idle past any grace: started, with its round, beyond the retention, last heard of
    an hour ago (within it, so that prune keeps the session)."""
    apply_events(
        conn,
        [
            SessionStarted(event_id="e1", occurred_at=LONG_AGO, session_id="s", model="m"),
            RoundStarted(event_id="e2", occurred_at=LONG_AGO, round_id="r", session_id="s", model="m"),
            SessionMessageCount(
                event_id="e3",
                occurred_at=datetime.now(UTC) - timedelta(hours=1),
                session_id="s",
                message_count=2,
            ),
        ],
    )


@pytest.fixture
def queue_name(key_prefix: str, redis_url: str) -> Iterator[str]:
    """A queue of this test's own, emptied afterwards with the jobs it held."""
    name = f"maintenance-{key_prefix.split(':')[-1]}"
    yield name
    client = redis.Redis.from_url(redis_url)
    q = Queue(name, connection=client)
    ids = (
        set(q.job_ids) | set(q.finished_job_registry.get_job_ids()) | set(q.failed_job_registry.get_job_ids())
    )
    for job_id in ids:
        client.delete(f"rq:job:{job_id}", f"rq:results:{job_id}")
        for func in (
            "worker.maintenance.jobs.reconcile",
            "worker.maintenance.jobs.prune",
            "worker.maintenance.jobs.fold",
        ):
            client.zrem(f"rq:cron_job:{func}:jobs", job_id)
    q.delete(delete_jobs=True)
    for key in client.scan_iter(f"rq:*{name}*"):
        client.delete(key)
    client.close()


def _env(db_url: str, redis_url: str, key_prefix: str, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(DATABASE_URL=db_url, REDIS_URL=redis_url, METRICS_STREAM=f"{key_prefix}:events", **extra)
    return env


def test_cron_config_registers_reconcile_every_minute_prune_daily_and_the_fold_hourly(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = ("METRICS_MAINTENANCE_QUEUE", "METRICS_RECONCILE_CRON", "METRICS_PRUNE_CRON", "METRICS_FOLD_CRON")
    for var in names:
        monkeypatch.delenv(var, raising=False)
    scheduler = CronScheduler(connection=redis.Redis.from_url(redis_url))
    scheduler.load_config_from_file("worker.maintenance.cron")
    jobs = {job.func_name: job for job in scheduler.get_jobs()}
    assert set(jobs) == {
        "worker.maintenance.jobs.reconcile",
        "worker.maintenance.jobs.prune",
        "worker.maintenance.jobs.fold",
    }
    fold = jobs["worker.maintenance.jobs.fold"]
    assert (fold.queue_name, fold.cron) == ("maintenance", "7 * * * *")
    assert (
        jobs["worker.maintenance.jobs.reconcile"].queue_name,
        jobs["worker.maintenance.jobs.reconcile"].cron,
    ) == (
        "maintenance",
        "* * * * *",
    )
    assert (jobs["worker.maintenance.jobs.prune"].queue_name, jobs["worker.maintenance.jobs.prune"].cron) == (
        "maintenance",
        "17 3 * * *",
    )
    now = datetime.now(UTC)
    assert jobs["worker.maintenance.jobs.reconcile"].next_enqueue_time <= now + timedelta(minutes=1)
    assert jobs["worker.maintenance.jobs.prune"].next_enqueue_time <= now + timedelta(days=1)


def test_rq_cron_enqueues_and_a_burst_rq_worker_runs_the_jobs(
    conn: psycopg.Connection,
    db_url: str,
    redis_url: str,
    key_prefix: str,
    redis_client: redis.Redis,
    queue_name: str,
) -> None:
    _stale(conn)
    # Every second instead of every minute / daily (croniter's sixth field is seconds).
    env = _env(
        db_url,
        redis_url,
        key_prefix,
        METRICS_MAINTENANCE_QUEUE=queue_name,
        METRICS_RECONCILE_CRON="* * * * * *",
        METRICS_PRUNE_CRON="* * * * * *",
    )
    scheduler = subprocess.Popen(
        [RQ, "cron", "worker.maintenance.cron", "--url", redis_url],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    queue = Queue(queue_name, connection=redis_client)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and scheduler.poll() is None:
            funcs = {job.func_name for job in queue.get_jobs()}
            if funcs == {"worker.maintenance.jobs.reconcile", "worker.maintenance.jobs.prune"}:
                break
            time.sleep(0.1)
        else:
            stderr = scheduler.stderr.read() if scheduler.stderr else ""
            pytest.fail(f"rq cron enqueued nothing within 20s: {stderr!r}")
    finally:
        scheduler.terminate()  # SIGTERM: it unregisters and exits
        _, err = scheduler.communicate(timeout=10)
    assert scheduler.returncode == 0, err.decode()

    # Up to a minute more after the last job, now and then: rq 3.0 listens on its pubsub channel
    # with a 60 s sleep and redis-py 8's PubSubWorkerThread.stop() joins that thread (seen 1 run in
    # 3; the jobs had finished in a second).
    done = subprocess.run(
        [RQ, "worker", "--burst", queue_name, "--url", redis_url],
        cwd=ROOT,
        env=env,
        capture_output=True,
        timeout=150,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert queue.count == 0 and queue.failed_job_registry.count == 0, done.stderr.decode()[-2000:]
    recorded = runs(conn)
    assert {r["job"] for r in recorded} == {"reconcile", "prune"}
    assert sum(r.get("sessions_completed", 0) for r in recorded) == 1  # the first reconcile did it
    assert conn.execute("SELECT status FROM session_metrics").fetchone() == ("completed",)


def test_one_shot_commands_from_a_shell(
    conn: psycopg.Connection, db_url: str, redis_url: str, key_prefix: str
) -> None:
    _stale(conn)
    env = _env(db_url, redis_url, key_prefix)
    rec = subprocess.run(
        [sys.executable, "-m", "worker.cli", "reconcile", "--grace", "5m"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert rec.returncode == 0, rec.stderr.decode()
    out = json.loads(rec.stdout)
    assert (out["job"], out["sessions_completed"], out["rounds"]) == ("reconcile", 1, 1)
    # metrics-worker (the main CLI) wires the same commands.
    pru = subprocess.run(
        [sys.executable, "-m", "worker.cli", "prune", "--older-than", "90d"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert pru.returncode == 0, pru.stderr.decode()
    out = json.loads(pru.stdout)
    assert (out["job"], out["rounds"]) == ("prune", 1)  # started LONG_AGO, more than 90 days back
    assert conn.execute("SELECT total_rounds FROM session_metrics").fetchone() == (0,)  # the session stays
    assert [r["job"] for r in runs(conn)] == ["reconcile", "prune"]


def test_cli_reports_a_skip_and_refuses_bad_input(
    conn: psycopg.Connection,
    db_url: str,
    redis_url: str,
    key_prefix: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in _env(db_url, redis_url, key_prefix).items():
        monkeypatch.setenv(name, value)
    schema = conn.execute("SELECT current_schema()").fetchone()[0]  # type: ignore[index]
    with psycopg.connect(db_url, autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(%s)", (lock_key("prune", schema),))
        assert worker_main(["prune"]) == 0
    assert json.loads(capsys.readouterr().out) == {"job": "prune", "skipped": True}
    assert worker_main(["prune", "--dedupe-window", "1h"]) == 2
    assert "METRICS_DEDUPE_WINDOW" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        worker_main(["reconcile", "--grace", "soon"])
    assert exit_info.value.code == 2
    assert "--grace: 'soon' is not a duration" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:  # seconds or days? refused, with the spellings
        worker_main(["prune", "--older-than", "90"])
    assert exit_info.value.code == 2
    assert "--older-than: '90' has no unit; write 90s, 90m, 90h or 90d" in capsys.readouterr().err
    # Settings that would destroy live data, or leave datetime's range: one line, status 2.
    for argv, says in (
        (
            ["prune", "--older-than", "0s"],
            "METRICS_RETENTION (--older-than): 0s is shorter than the minimum, 1d:",
        ),
        (["prune", "--dead-letter-retention", "5m"], "METRICS_DEAD_LETTER_RETENTION"),
        (
            ["reconcile", "--grace", "30s"],
            "METRICS_RECONCILE_GRACE (--grace): 30s is shorter than the minimum, 1m",
        ),
    ):
        assert worker_main(argv) == 2
        assert says in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        worker_main(["prune", "--older-than", "99999999999d"])
    assert exit_info.value.code == 2
    assert "'99999999999d' is longer than 36500 days" in capsys.readouterr().err


def test_the_deprecated_paths_still_schedule_and_run_the_jobs(redis_url: str) -> None:
    """One release of shims for deployed schedulers: ``rq cron worker.cron_config`` registers the
    same jobs, and jobs queued under ``worker.jobs.*`` still resolve (a fresh process, as rq's)."""
    script = (
        "import redis, rq.cron, worker.jobs, worker.maintenance.jobs as j\n"
        "assert (worker.jobs.reconcile, worker.jobs.prune) == (j.reconcile, j.prune)\n"
        f"s = rq.cron.CronScheduler(connection=redis.Redis.from_url({redis_url!r}))\n"
        "s.load_config_from_file('worker.cron_config')\n"
        "print(sorted(job.func_name for job in s.get_jobs()))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    last = done.stdout.strip().splitlines()[-1]  # rq logs the registrations before it
    assert last == str(
        ["worker.maintenance.jobs.fold", "worker.maintenance.jobs.prune", "worker.maintenance.jobs.reconcile"]
    )
