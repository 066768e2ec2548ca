"""The statements of the reads: each a whole named text that PostgreSQL takes on its own, and no
N+1 (a page of sessions, or one session's detail, costs a fixed number of statements)."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import re
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from types import ModuleType
from typing import Any

import psycopg
import pytest

from tests.conftest import Services
from tests.read.conftest import Filled, filled_schema
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


def test_session_detail_costs_four_statements_whatever_its_size(counting: CountingConnection) -> None:
    n_small, small = _count(counting, lambda: queries.session_detail(counting, "small0000"))
    n_big, big = _count(counting, lambda: queries.session_detail(counting, "big0000"))
    assert (len(small.rounds), len(big.rounds), sum(len(r.tool_calls) for r in big.rounds)) == (1, 60, 300)
    assert n_small == n_big == 4
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


# -- every statement a whole named text --------------------------------------------------------


def _modules() -> list[ModuleType]:
    return [
        importlib.import_module(f"{queries.__name__}.{m.name}")
        for m in pkgutil.iter_modules(queries.__path__)
    ]


def _statements() -> dict[str, str]:
    """Every statement constant of worker.read.queries, by module and name (an UPPER_CASE str)."""
    return {
        f"{module.__name__.rsplit('.', 1)[1]}.{name}": value
        for module in _modules()
        for name, value in vars(module).items()
        if name.isupper() and isinstance(value, str)
    }


#: The type of each parameter a statement takes, as a reader would declare it in psql.
PARAMETER_TYPES = {
    "start_date": "date",
    "end_date": "date",
    "model": "text",
    "endpoint": "text",
    "cursor": "text",
    "session_id": "text",
    "tail": "text",
    "length": "int4",
    "limit": "int8",
    "user_id": "text",
    "top": "int8",
    "start_at": "timestamptz",
    "end_at": "timestamptz",
    "days_from": "date",
    "days_to": "date",
    "add_from": "timestamptz",
    "add_to": "timestamptz",
    "add2_from": "timestamptz",
    "add2_to": "timestamptz",
    "sub_from": "timestamptz",
    "sub_to": "timestamptz",
    "sub2_from": "timestamptz",
    "sub2_to": "timestamptz",
}


def test_every_statement_constant_is_one_literal() -> None:
    """Written whole: no constant is built from fragments (concatenation, an f-string, replace)."""
    built = []
    for module in _modules():
        for node in ast.parse(inspect.getsource(module)).body:
            if isinstance(node, ast.Assign | ast.AnnAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                names = [t.id for t in targets if isinstance(t, ast.Name) and t.id.isupper()]
                statement = any(isinstance(vars(module)[n], str) for n in names)
                if statement and not isinstance(node.value, ast.Constant):
                    built += [f"{module.__name__}.{n}" for n in names]
    assert built == []
    assert len(_statements()) >= 22


@pytest.mark.parametrize("name", sorted(_statements()))
def test_every_statement_prepares_on_its_own(counting_url: str, name: str) -> None:
    """What pasting it into psql means: PREPARE with its parameters typed, nothing else around it."""
    statement = _statements()[name]
    names = list(dict.fromkeys(re.findall(r"%\((\w+)\)s", statement)))
    assert set(names) <= set(PARAMETER_TYPES), (
        f"give the new parameters a type: {set(names) - set(PARAMETER_TYPES)}"
    )
    numbered = re.sub(r"%\((\w+)\)s", lambda m: f"${names.index(m[1]) + 1}", statement)
    assert "%" not in numbered, "a placeholder psycopg would read other than %(name)s"
    declared = f" ({', '.join(PARAMETER_TYPES[n] for n in names)})" if names else ""
    nulls = f" ({', '.join(['NULL'] * len(names))})" if names else ""
    with psycopg.connect(counting_url, autocommit=True) as conn:
        conn.execute(f"PREPARE whole{declared} AS {numbered}")
        conn.execute(f"EXPLAIN EXECUTE whole{nulls}")


def _reads(conn: psycopg.Connection[Any]) -> list[Any]:
    """Every public read, each filter given at least once, every path of sessions taken."""
    first, second = (s.session_id for s in queries.sessions(conn, limit=2))
    feb = {"start_date": date(2026, 2, 2), "end_date": date(2026, 2, 6)}
    return [
        queries.summary(conn),
        queries.summary(conn, **feb),
        queries.by_model(conn, **feb),
        queries.daily_metrics(conn, days=30, end_date=date(2026, 2, 28)),
        queries.sessions(conn, model="gpt-4", limit=5, **feb),
        queries.sessions(conn, before=first, limit=3),
        queries.sessions(conn, after=second),
        queries.session_detail(conn, first),
        queries.sessions_ending_with(conn, first[-4:]),
        queries.tool_metrics(conn, **feb),
        queries.forward_summary(conn),
        queries.forward_summary(conn, endpoint="openai.chat_completions", model="gpt-4", **feb),
        queries.forward_by_endpoint(conn, model="gpt-4"),
        queries.forward_requests(conn, endpoint="openai.chat_completions", limit=10),
        queries.forward_daily_metrics(conn, days=30, end_date=date(2026, 2, 28)),
        queries.forward_statuses(conn, model="gpt-4", **feb),
        queries.cost(conn, **feb),
        queries.cost(conn, model="gpt-4", user_id="u1", top=3),
        queries.latency(conn, **feb),
        queries.latency(conn, hours=24, now=datetime(2026, 2, 3, 12, tzinfo=UTC)),
        queries.hourly_series(conn, hours=48, now=datetime(2026, 2, 3, 12, tzinfo=UTC), model="gpt-4"),
        queries.summary(conn, hours=48, now=datetime(2026, 2, 3, 12, tzinfo=UTC)),
        queries.by_model(conn, hours=48, now=datetime(2026, 2, 3, 12, tzinfo=UTC)),
        queries.tool_metrics(conn, hours=48, now=datetime(2026, 2, 3, 12, tzinfo=UTC)),
        queries.forward_summary(conn, hours=48, now=datetime(2026, 2, 3, 12, tzinfo=UTC), model="gpt-4"),
        queries.forward_by_endpoint(conn, hours=48, now=datetime(2026, 2, 3, 12, tzinfo=UTC)),
        queries.cost(conn, hours=48, now=datetime(2026, 2, 3, 12, tzinfo=UTC), user_id="u1"),
        queries.cost(conn, hours=48, now=datetime(2026, 2, 3, 12, tzinfo=UTC), model="gpt-4"),
    ]


def test_every_statement_a_read_sends_is_a_named_one(scenario: Filled) -> None:
    """Each read sends only named constants, whether the roll-ups are ready or a back-fill is due
    (both answers alike), and every constant is sent by some read."""
    named = {id(text): name for name, text in _statements().items()}
    with CountingConnection.connect(scenario.url, cursor_factory=CountingCursor) as conn:
        conn.statements = []
        ready = _reads(conn)
        sent_ready = list(conn.statements)
        conn.execute("UPDATE rollup_backfill SET done = false, upto = NULL")
        conn.statements = []
        due = _reads(conn)
        sent_due = list(conn.statements)
        conn.rollback()
    assert due == ready
    unnamed = [text for text in sent_ready + sent_due if id(text) not in named]
    assert unnamed == []
    from_rollup = {n for n in named.values() if n.endswith("_FROM_ROLLUP")}
    assert {named[id(t)] for t in sent_ready} >= from_rollup
    assert not any(named[id(t)].endswith("_FROM_BASE") for t in sent_ready)
    assert {named[id(t)] for t in sent_ready + sent_due} == set(named.values())
