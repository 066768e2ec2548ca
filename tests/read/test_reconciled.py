"""A session the reconcile job closed is told apart in every read, the CLI and the API: marked in the
list and the detail, counted apart in the summary, per model and per day (the roll-ups and their
base-table twins alike), while sessions closed by session.completed count as the seed counts them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from tests.read.conftest import fill
from tests.read.events import Events, usage, utc
from worker import cli
from worker.maintenance.reconcile import HintSnapshot, reconcile
from worker.read import queries
from worker.read.api import create_app

T = utc(2026, 2, 12, 9)
NOW = T + timedelta(hours=2)
GRACE = timedelta(minutes=10)


@pytest.fixture
def reconciled(conn: psycopg.Connection[Any]) -> psycopg.Connection[Any]:
    """Five sessions on one day: 'done' closed by session.completed, 'failed' by an error, 'dead'
    and 'waiting' closed by reconcile (completed, and awaiting_response as its hint said), 'live'
    still running (its last activity inside the grace); 'other' on the next day, reconciled."""
    ev = Events()
    for sid, model in (("done", "gpt-4"), ("failed", "gpt-4"), ("dead", "gpt-4"), ("waiting", "claude-3")):
        ev.session_started(sid, model, T)
        ev.round_started(f"{sid}-r", sid, model, T)
        ev.round_completed(f"{sid}-r", sid, T + timedelta(minutes=3), usage(2, 3))
    ev.session_completed("done", "completed", T + timedelta(minutes=4))
    ev.session_completed("failed", "error", T + timedelta(minutes=4))
    ev.session_started("live", "gpt-4", T)
    ev.round_started("live-r", "live", "gpt-4", NOW - timedelta(minutes=1))
    ev.session_started("other", "gpt-4", T + timedelta(days=1))
    fill(conn, ev.events)
    reconcile(conn, HintSnapshot(awaiting=frozenset({"waiting"})), now=NOW, grace=GRACE)
    reconcile(conn, HintSnapshot(active=frozenset({"live"})), now=NOW + timedelta(days=1), grace=GRACE)
    return conn


def test_the_list_and_the_detail_carry_the_mark(reconciled: psycopg.Connection[Any]) -> None:
    listed = {s.session_id: s for s in queries.sessions(reconciled)}
    assert {sid for sid, s in listed.items() if s.closed_by_reconcile} == {"dead", "waiting", "other"}
    assert listed["dead"].reconciled_at == NOW
    assert (listed["dead"].status, listed["waiting"].status) == ("completed", "awaiting_response")
    assert listed["dead"].completed_at == T + timedelta(minutes=3)  # its last activity
    assert listed["dead"].duration_ms == 180_000
    assert listed["done"].reconciled_at is None and listed["live"].reconciled_at is None
    detail = queries.session_detail(reconciled, "waiting")
    assert detail is not None
    assert detail.session.closed_by_reconcile and detail.session.reconciled_at == NOW
    done = queries.session_detail(reconciled, "done")
    assert done is not None and not done.session.closed_by_reconcile


def test_counts_keep_reconciled_sessions_apart(reconciled: psycopg.Connection[Any]) -> None:
    s = queries.summary(reconciled)
    assert s.total_sessions == 6
    assert (s.completed_sessions, s.error_sessions, s.active_sessions) == (1, 1, 1)
    assert (s.awaiting_response_sessions, s.cancelled_sessions, s.reconciled_sessions) == (0, 0, 3)
    assert s.total_sessions == sum(
        (s.active_sessions, s.completed_sessions, s.awaiting_response_sessions, s.error_sessions,
         s.cancelled_sessions, s.reconciled_sessions)
    )  # fmt: skip
    first_day = queries.summary(reconciled, start_date=T.date(), end_date=T.date())
    assert (first_day.total_sessions, first_day.reconciled_sessions) == (5, 2)

    models = {m.model: (m.sessions, m.reconciled_sessions) for m in queries.by_model(reconciled)}
    assert models == {"gpt-4": (5, 2), "claude-3": (1, 1)}
    days = {d.date: (d.total_sessions, d.reconciled_sessions) for d in queries.daily_metrics(
        reconciled, days=3, end_date=date(2026, 2, 13))}  # fmt: skip
    assert days == {date(2026, 2, 12): (5, 2), date(2026, 2, 13): (1, 1)}


def test_the_roll_ups_and_the_base_tables_agree(reconciled: psycopg.Connection[Any]) -> None:
    def reads() -> list[Any]:
        return [
            queries.summary(reconciled),
            queries.summary(reconciled, start_date=date(2026, 2, 13)),
            queries.by_model(reconciled),
            queries.daily_metrics(reconciled, days=3, end_date=date(2026, 2, 13)),
        ]

    ready = reads()
    with reconciled.transaction(force_rollback=True):
        reconciled.execute("UPDATE rollup_backfill SET done = false, upto = NULL")
        due = reads()
    assert due == ready
    assert ready[0].reconciled_sessions == 3


def test_a_later_event_takes_the_mark_away(reconciled: psycopg.Connection[Any]) -> None:
    ev = Events()
    ev.round_started("dead-r2", "dead", "gpt-4", NOW + timedelta(minutes=5))
    fill(reconciled, ev.events)
    dead = queries.session_detail(reconciled, "dead")
    assert dead is not None
    assert (dead.session.status, dead.session.closed_by_reconcile, dead.session.reconciled_at) == (
        "running",
        False,
        None,
    )
    s = queries.summary(reconciled)
    assert (s.active_sessions, s.reconciled_sessions) == (2, 2)


@pytest.fixture
def db_env(db_url: str, reconciled: psycopg.Connection[Any], monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("COLUMNS", "200")
    return db_url


def test_the_cli_shows_the_mark(db_env: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["query", "sessions"]) == 0
    cells = [[c.strip() for c in line.split("│")[1:-1]] for line in capsys.readouterr().out.splitlines()]
    status = {row[0]: row[2] for row in cells if row}
    assert status["dead"] == status["other"] == "completed (reconciled)"
    assert status["waiting"] == "awaiting_response (reconciled)"
    assert (status["done"], status["failed"], status["live"]) == ("completed", "error", "running")

    assert cli.main(["query", "session", "dead"]) == 0
    out = capsys.readouterr().out
    assert "completed (reconciled)" in out
    assert "closed by reconcile at" in out and "2026-02-12" in out

    assert cli.main(["query", "summary"]) == 0
    pairs = [[c.strip() for c in line.split("│")[1:-1]] for line in capsys.readouterr().out.splitlines()]
    assert dict(row for row in pairs if len(row) == 2)["closed by reconcile"] == "3"

    assert cli.main(["query", "sessions", "--json"]) == 0
    listed = {s["session_id"]: s for s in json.loads(capsys.readouterr().out)}
    assert listed["dead"]["closed_by_reconcile"] is True
    assert listed["dead"]["reconciled_at"].startswith("2026-02-12T11:00:00")
    assert listed["done"]["reconciled_at"] is None

    assert cli.main(["query", "by-model", "--csv"]) == 0
    header, *rows_csv = capsys.readouterr().out.splitlines()
    assert header.split(",")[:3] == ["model", "sessions", "reconciled"]
    assert sorted(r.split(",")[:3] for r in rows_csv) == [["claude-3", "1", "1"], ["gpt-4", "5", "2"]]


@pytest.fixture
def client(db_url: str, reconciled: psycopg.Connection[Any]) -> Iterator[TestClient]:
    with TestClient(create_app(db_url)) as test_client:
        yield test_client


def test_the_api_serves_and_documents_the_mark(client: TestClient) -> None:
    sessions = {s["session_id"]: s for s in client.get("/v1/sessions").json()}
    assert (sessions["dead"]["closed_by_reconcile"], sessions["done"]["closed_by_reconcile"]) == (True, False)
    assert client.get("/v1/sessions/waiting").json()["session"]["closed_by_reconcile"] is True
    assert client.get("/v1/summary").json()["reconciled_sessions"] == 3
    assert {m["model"]: m["reconciled_sessions"] for m in client.get("/v1/models").json()} == {
        "gpt-4": 2,
        "claude-3": 1,
    }
    daily = client.get("/v1/daily", params={"days": 3, "end_date": "2026-02-13"}).json()
    assert [d["reconciled_sessions"] for d in daily] == [2, 1]

    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    for model, field in (
        ("SessionMetrics", "closed_by_reconcile"),
        ("SessionMetrics", "reconciled_at"),
        ("MetricsSummary", "reconciled_sessions"),
        ("ModelMetrics", "reconciled_sessions"),
        ("DailyMetrics", "reconciled_sessions"),
    ):
        assert "reconcile" in schemas[model]["properties"][field]["description"], (model, field)
