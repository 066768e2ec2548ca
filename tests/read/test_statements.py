"""No N+1: a page of sessions, or one session's detail, costs a fixed number of statements."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date, timedelta
from typing import Any

import psycopg
import pytest

from tests.conftest import Services
from tests.read.conftest import filled_schema
from tests.read.events import Events, usage, utc
from worker.read import queries


class CountingCursor(psycopg.Cursor[Any]):
    """Records every statement sent through a cursor (Connection.execute uses one too)."""

    def execute(self, query: Any, params: Any = None, **kwargs: Any) -> CountingCursor:  # type: ignore[override]
        self.connection.statements.append(query)  # type: ignore[attr-defined]
        return super().execute(query, params, **kwargs)  # type: ignore[return-value]


class CountingConnection(psycopg.Connection[Any]):
    statements: list[Any]


def _build(ev: Events, sessions: int, rounds: int, tools: int, prefix: str = "s") -> None:
    start = utc(2026, 3, 1)
    for n in range(sessions):
        sid = f"{prefix}{n:04d}"
        at = start + timedelta(minutes=n)
        ev.session_started(sid, "gpt-4" if n % 2 else "claude-3", at)
        for r in range(rounds):
            rid = f"{sid}-r{r}"
            ev.round_started(rid, sid, "gpt-4", at + timedelta(seconds=r))
            for k in range(tools):
                tid = f"{rid}-t{k}"
                ev.tool_started(tid, rid, sid, f"tool-{k % 3}", at + timedelta(seconds=r, milliseconds=k))
                ev.tool_completed(tid, rid, sid, at + timedelta(seconds=r, milliseconds=k + 1))
            ev.round_completed(rid, sid, at + timedelta(seconds=r, milliseconds=500), usage(3, 4))


@pytest.fixture(scope="module")
def counting_url(services: Services) -> Iterator[str]:
    ev = Events()
    _build(ev, sessions=150, rounds=2, tools=3)  # a full page of 100, with tools everywhere
    _build(ev, sessions=1, rounds=1, tools=1, prefix="small")
    _build(ev, sessions=1, rounds=60, tools=5, prefix="big")
    with filled_schema(services, ev.events) as url:
        yield url


@pytest.fixture
def counting(counting_url: str) -> Iterator[CountingConnection]:
    connection = CountingConnection.connect(counting_url, autocommit=True, cursor_factory=CountingCursor)
    connection.statements = []
    with connection:
        yield connection


def _count(conn: CountingConnection, read: Callable[[], Any]) -> tuple[int, Any]:
    conn.statements.clear()
    result = read()
    return len(conn.statements), result


def test_a_page_of_100_sessions_costs_one_statement(counting: CountingConnection) -> None:
    n, page = _count(counting, lambda: queries.sessions(counting, limit=100))
    assert len(page) == 100 and all(s.tool_breakdown for s in page)
    assert n == 1
    n_small, small = _count(counting, lambda: queries.sessions(counting, limit=2))
    assert (n_small, len(small)) == (n, 2)


def test_session_detail_costs_three_statements_whatever_its_size(counting: CountingConnection) -> None:
    n_small, small = _count(counting, lambda: queries.session_detail(counting, "small0000"))
    n_big, big = _count(counting, lambda: queries.session_detail(counting, "big0000"))
    assert (len(small.rounds), len(big.rounds), sum(len(r.tool_calls) for r in big.rounds)) == (1, 60, 300)
    assert n_small == n_big == 3
    n_missing, missing = _count(counting, lambda: queries.session_detail(counting, "nobody"))
    assert (n_missing, missing) == (1, None)


@pytest.mark.parametrize(
    "read",
    [
        lambda c: queries.summary(c),
        lambda c: queries.by_model(c),
        lambda c: queries.daily_metrics(c, days=30, end_date=date(2026, 3, 1)),
        lambda c: queries.forward_summary(c),
        lambda c: queries.forward_by_endpoint(c),
        lambda c: queries.forward_requests(c),
        lambda c: queries.forward_daily_metrics(c, days=30),
    ],
)
def test_every_other_read_is_one_statement(
    counting: CountingConnection, read: Callable[[CountingConnection], Any]
) -> None:
    n, _ = _count(counting, lambda: read(counting))
    assert n == 1
