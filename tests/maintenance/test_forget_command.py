"""``metrics-worker forget --session ID`` / ``--user ID`` as a console script: exactly those sessions'
rows, roll-up counts and hints go, it says how much, and a second run finds nothing and still
succeeds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from typing import Any

import psycopg
import redis

from tests.engine.rollups import assert_rollups_match, rollup_buckets
from tests.read.conftest import fill
from tests.read.events import Events, usage, utc
from worker.maintenance.reconcile import HintSnapshot, reconcile
from worker.read import queries

T = utc(2026, 3, 2, 9)


def _forget(db_url: str, redis_url: str, stream: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": db_url, "REDIS_URL": redis_url, "METRICS_STREAM": stream}
    return subprocess.run(
        [sys.executable, "-m", "worker.cli", "forget", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _rows_of(conn: psycopg.Connection[Any], session_id: str) -> dict[str, list[Any]]:
    return {
        table: conn.execute(
            f"SELECT * FROM {table} WHERE session_id = %s ORDER BY 1", (session_id,)
        ).fetchall()
        for table in ("session_metrics", "round_metrics", "tool_call_metrics")
    }


def test_forget_takes_one_session_and_is_idempotent(
    conn: psycopg.Connection[Any], db_url: str, redis_url: str, redis_client: redis.Redis, key_prefix: str
) -> None:
    ev = Events()
    for sid, model, rounds in (("gone", "m-gone", 2), ("kept", "m-kept", 3)):
        ev.session_started(sid, model, T)
        for r in range(rounds):
            rid = f"{sid}-r{r}"
            ev.round_started(rid, sid, model, T + timedelta(seconds=r))
            ev.tool_started(f"{rid}-t", rid, sid, "shell", T + timedelta(seconds=r))
            ev.tool_completed(f"{rid}-t", rid, sid, T + timedelta(seconds=r, milliseconds=5))
            ev.round_completed(rid, sid, T + timedelta(seconds=r, milliseconds=9), usage(2, 3))
    ev.session_completed("kept", "completed", T + timedelta(minutes=1))
    fill(conn, ev.events)
    reconcile(conn, HintSnapshot(), now=T + timedelta(hours=1), grace=timedelta(minutes=10))  # 'gone' too
    stream = f"{key_prefix}:events"
    redis_client.zadd(f"{stream}:hints:active", {"gone": 1, "kept": 1})
    redis_client.zadd(f"{stream}:hints:awaiting", {"gone": 1})
    kept_rows = _rows_of(conn, "kept")
    kept_model = [m for m in queries.by_model(conn) if m.model == "m-kept"]
    assert queries.summary(conn).reconciled_sessions == 1

    done = _forget(db_url, redis_url, stream, "--session", "gone", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "job": "forget", "sessions": 1, "rounds": 2, "tool_calls": 2, "forwards": 0, "hints": 2,
    }  # fmt: skip
    assert _rows_of(conn, "gone") == {"session_metrics": [], "round_metrics": [], "tool_call_metrics": []}
    assert _rows_of(conn, "kept") == kept_rows
    assert_rollups_match(conn)
    assert queries.by_model(conn) == kept_model
    summary = queries.summary(conn)
    assert (summary.total_sessions, summary.reconciled_sessions, summary.completed_sessions) == (1, 0, 1)
    assert redis_client.zrange(f"{stream}:hints:active", 0, -1) == [b"kept"]
    assert redis_client.zcard(f"{stream}:hints:awaiting") == 0

    buckets = rollup_buckets(conn)
    again = _forget(db_url, redis_url, stream, "--session", "gone", "--session", "never-was")
    assert again.returncode == 0, again.stderr
    assert again.stdout == "forgot 0 sessions, 0 rounds, 0 tool calls, 0 forwards, 0 hints\n"
    assert rollup_buckets(conn) == buckets
    assert _rows_of(conn, "kept") == kept_rows


def test_forget_needs_a_session_and_refuses_an_empty_one(db_url: str, redis_url: str) -> None:
    for args in ([], ["--session", ""]):
        done = _forget(db_url, redis_url, "x", *args)
        assert done.returncode == 2, (args, done.stderr)
        assert "--session" in done.stderr and "Traceback" not in done.stderr


def test_forget_a_user_takes_every_session_of_theirs_and_nobody_elses(
    conn: psycopg.Connection[Any], db_url: str, redis_url: str, key_prefix: str
) -> None:
    ev = Events()
    for sid, user in (("a1", "alice"), ("a2", "alice"), ("b1", "bob"), ("n1", None)):
        ev.session_started(sid, "m", T, user_id=user)
        ev.round_started(f"{sid}-r", sid, "m", T)
        ev.round_completed(f"{sid}-r", sid, T + timedelta(seconds=1), usage(2, 3))
    fill(conn, ev.events)
    stream = f"{key_prefix}:events"

    done = _forget(db_url, redis_url, stream, "--user", "alice", "--user", "carol", "--json")
    assert done.returncode == 0, done.stderr
    assert (json.loads(done.stdout)["sessions"], json.loads(done.stdout)["rounds"]) == (2, 2)
    left = {sid for (sid,) in conn.execute("SELECT session_id FROM session_metrics").fetchall()}
    assert left == {"b1", "n1"}
    assert conn.execute("SELECT count(*) FROM round_metrics WHERE session_id LIKE 'a%'").fetchone() == (0,)
    assert_rollups_match(conn)
    assert queries.summary(conn).total_sessions == 2

    both = _forget(db_url, redis_url, stream, "--user", "alice", "--session", "n1")
    assert both.returncode == 0, both.stderr
    assert both.stdout.startswith("forgot 1 session, 1 round, ")
    assert {sid for (sid,) in conn.execute("SELECT session_id FROM session_metrics").fetchall()} == {"b1"}
    assert_rollups_match(conn)
