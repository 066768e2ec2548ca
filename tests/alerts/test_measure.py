"""What each kind measures, over the base tables and the roll-ups alike; every statement whole,
and the short windows read through indexes."""

from __future__ import annotations

import ast
import inspect
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from tests.alerts.helpers import NOW, fill_sixty_days
from tests.read.conftest import fill
from tests.read.events import Events, usage
from worker.alerts import measure, store
from worker.alerts.evaluate import Reading
from worker.alerts.rules import Rule

AGO = timedelta(minutes=5)


def rule(watch: str, window: str = "15m", **changes: Any) -> Rule:
    span = {"15m": timedelta(minutes=15), "1d": timedelta(days=1), "2d": timedelta(days=2)}[window]
    return Rule(name=watch, watch=watch, window=span, comparison=">", threshold=0.5, **changes)


def build() -> Events:
    ev = Events()
    at = NOW - AGO
    for n in range(15):  # model a: 10 rounds, 3 errors; model b: 5 rounds, none
        model = "a" if n < 10 else "b"
        sid = f"s{n}"
        ev.session_started(sid, model, at)
        ev.round_started(f"r{n}", sid, model, at)
        ev.round_completed(f"r{n}", sid, at, usage(10, 5), status="error" if n < 3 else "success")
        if n < 3:
            ev.session_completed(sid, "error" if n == 0 else "completed", at)
    for n in range(6):  # tool x: 4 calls, 2 failed; y: 2 calls
        name = "x" if n < 4 else "y"
        ev.tool_started(f"t{n}", "r0", "s0", name, at)
        ev.tool_completed(f"t{n}", "r0", "s0", at, success=not (n < 2))
    for n, status in enumerate(["error", "timeout", "success", None]):
        ev.forward_started(f"f{n}", "e1", "a", at)
        if status:
            ev.forward_completed(f"f{n}", at, status=status)
    old = NOW - timedelta(hours=2)  # today, outside 15m
    ev.session_started("old", "a", old)
    ev.round_started("old-r", "old", "a", old)
    ev.round_completed("old-r", "old", old, usage(100, 0), status="error")
    return ev


@pytest.fixture
def filled(conn: psycopg.Connection[Any]) -> psycopg.Connection[Any]:
    fill(conn, build().events)
    return conn


def one(readings: list[Reading]) -> tuple[float, int]:
    (r,) = readings
    return round(r.value or 0, 4), r.samples


def test_each_kind_over_a_short_window(filled: psycopg.Connection[Any]) -> None:
    m = lambda r: measure.measure_tables(filled, r, NOW)  # noqa: E731
    assert one(m(rule("round_error_share"))) == (0.2, 15)
    assert one(m(rule("round_error_share", filters=(("model", "a"),)))) == (0.3, 10)
    assert sorted(m(rule("round_error_share", group_by="model"))) == [
        Reading("model=a", 0.3, 10),
        Reading("model=b", 0.0, 5),
    ]
    assert one(m(rule("tool_error_share"))) == (round(2 / 6, 4), 6)
    assert one(m(rule("tool_error_share", filters=(("tool", "x"),)))) == (0.5, 4)
    assert one(m(rule("forward_error_share"))) == (round(2 / 3, 4), 3)
    assert m(rule("forward_error_share", filters=(("endpoint", "e2"),))) == [Reading("", 0.0, 0)]
    assert one(m(rule("session_error_share"))) == (round(1 / 3, 4), 3)
    assert one(m(rule("tokens"))) == (225.0, 15)
    assert one(m(rule("silence"))) == (15 + 15 + 6 + 4, 0)
    assert one(m(rule("silence", filters=(("model", "b"),)))) == (5 + 5, 0)
    assert one(m(rule("silence", filters=(("model", "z"),)))) == (0, 0)


@pytest.mark.parametrize(
    "watch", ["tool_error_share", "forward_error_share", "session_error_share", "tokens"]
)
def test_days_read_the_rollups_and_their_base_twin_alike(filled: psycopg.Connection[Any], watch: str) -> None:
    r = rule(watch, "1d", group_by="tool" if watch == "tool_error_share" else "model")
    first, fallback = measure.statements_of(r, NOW)
    assert first.lstrip().startswith("SELECT ready.rollups_ready") and fallback is not None
    ready = sorted(measure.measure_tables(filled, r, NOW))
    with filled.transaction():
        filled.execute("UPDATE rollup_backfill SET done = false, upto = NULL")
        due = sorted(measure.measure_tables(filled, r, NOW))
        filled.execute("UPDATE rollup_backfill SET done = true")
    assert ready == due and ready


def test_a_day_window_is_utc_dates_today_included() -> None:
    assert measure.span(rule("tokens", "1d"), NOW)["since"] == datetime(2026, 3, 10, tzinfo=UTC)
    assert measure.span(rule("tokens", "2d"), NOW)["since"] == datetime(2026, 3, 9, tzinfo=UTC)
    assert measure.span(rule("tokens"), NOW)["since"] == NOW - timedelta(minutes=15)


def test_round_latency_percentiles_are_postgresqls_percentile_disc(conn: psycopg.Connection[Any]) -> None:
    ev = Events()
    at = NOW - timedelta(minutes=10)
    ev.session_started("s", "lat", at)
    for i in range(1, 101):  # 1 s to 100 s
        ev.round_started(f"r{i}", "s", "lat", at)
        ev.round_completed(f"r{i}", "s", at + timedelta(seconds=i), usage(1, 1))
    ev.round_started("running", "s", "lat", at)  # unfinished: not a sample
    fill(conn, ev.events)
    assert one(measure.measure_tables(conn, rule("round_latency_p95"), NOW)) == (95_000.0, 100)
    assert one(measure.measure_tables(conn, rule("round_latency_p99"), NOW)) == (99_000.0, 100)
    assert measure.measure_tables(conn, rule("round_latency_p95", filters=(("model", "other"),)), NOW) == [
        Reading("", 0.0, 0)
    ]


def test_provider_and_user_filter_and_group_where_their_columns_are(conn: psycopg.Connection[Any]) -> None:
    """Rounds and forwards by provider, sessions by user; over days too (from the base tables:
    the roll-ups keep neither); a row that reported none groups under ''."""
    ev = Events()
    at = NOW - timedelta(minutes=5)
    for n, (provider, user, status) in enumerate(
        [
            ("openai", "u1", "error"),
            ("openai", "u1", "success"),
            ("anthropic", "u2", "success"),
            (None, None, "error"),
        ]
    ):
        ev.session_started(f"s{n}", "m", at, user_id=user)
        ev.round_started(f"r{n}", f"s{n}", "m", at, provider=provider)
        ev.round_completed(
            f"r{n}", f"s{n}", at + timedelta(seconds=n + 1), usage(5, 5), status=status, ttft=100 * (n + 1)
        )
        ev.session_completed(f"s{n}", "error" if status == "error" else "completed", at)
        ev.forward_started(f"f{n}", "e", "m", at, provider=provider)
        ev.forward_completed(f"f{n}", at, status=status)
    fill(conn, ev.events)
    m = lambda r: sorted(measure.measure_tables(conn, r, NOW))  # noqa: E731
    for window in ("15m", "1d"):
        assert m(rule("round_error_share", window, group_by="provider")) == [
            Reading("provider=", 1.0, 1),
            Reading("provider=anthropic", 0.0, 1),
            Reading("provider=openai", 0.5, 2),
        ]
        assert m(rule("forward_error_share", window, filters=(("provider", "openai"),))) == [
            Reading("", 0.5, 2)
        ]
        assert m(rule("session_error_share", window, filters=(("user", "u1"),))) == [Reading("", 0.5, 2)]
        assert m(rule("tokens", window, group_by="provider"))[2] == Reading("provider=openai", 20.0, 2)
    assert m(rule("silence", filters=(("user", "u2"),))) == [Reading("", 1.0, 0)]
    assert m(rule("silence", filters=(("provider", "openai"),))) == [
        Reading("", 4.0, 0)
    ]  # 2 rounds, 2 forwards
    assert m(rule("time_to_first_token_p95", group_by="provider"))[2] == Reading("provider=openai", 200.0, 2)


def test_rounds_over_days_read_the_base_table(filled: psycopg.Connection[Any]) -> None:
    assert one(measure.measure_tables(filled, rule("round_error_share", "1d"), NOW)) == (0.25, 16)


# -- every statement whole, and the short windows through indexes -------------------------------

MODULES = (measure, store)


def statements() -> dict[str, str]:
    return {
        f"{m.__name__}.{name}": value
        for m in MODULES
        for name, value in vars(m).items()
        if name.isupper() and isinstance(value, str)
    }


def test_every_statement_is_one_literal() -> None:
    built = []
    for module in MODULES:
        for node in ast.parse(inspect.getsource(module)).body:
            if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
                name = node.targets[0].id
                if (
                    name.isupper()
                    and isinstance(vars(module)[name], str)
                    and not isinstance(node.value, ast.Constant)
                ):
                    built.append(name)
    assert built == []
    assert len(statements()) >= 17


TYPES = {
    "since": "timestamptz",
    "first_day": "date",
    "last_day": "date",
    "group_by": "text",
    "model": "text",
    "tool": "text",
    "endpoint": "text",
    "rule": "text",
    "rules": "text[]",
    "quantile": "float8",
    "provider": "text",
    "user": "text",
}


@pytest.mark.parametrize("name", sorted(statements()))
def test_every_statement_prepares_on_its_own(conn: psycopg.Connection[Any], name: str) -> None:
    """What pasting it into psql means (parameters typed; writes' parameters left to PostgreSQL)."""
    statement = statements()[name]
    names = list(dict.fromkeys(re.findall(r"%\((\w+)\)s", statement)))
    numbered = re.sub(r"%\((\w+)\)s", lambda m: f"${names.index(m[1]) + 1}", statement)
    declared = f" ({', '.join(TYPES.get(n, 'unknown') for n in names)})" if names else ""
    declared = "" if "unknown" in declared else declared
    conn.execute(f"PREPARE whole{declared} AS {numbered}")


def test_short_windows_use_the_indexes(conn: psycopg.Connection[Any]) -> None:
    """60 days of rows (90,000 of each), analysed: a 15m window's plan scans an index, never the
    table."""
    fill_sixty_days(conn)
    for watch, filters in [
        ("round_error_share", ()),
        ("tool_error_share", ()),
        ("forward_error_share", (("endpoint", "e1"),)),
        ("forward_error_share", (("model", "m1"),)),
        ("session_error_share", (("model", "m1"),)),
        ("tokens", ()),
        ("silence", ()),
        ("silence", (("model", "m1"),)),
        ("round_latency_p95", (("model", "m1"),)),
    ]:
        r = rule(watch, filters=filters)
        statement, _ = measure.statements_of(r, NOW)
        with conn.cursor() as cur:
            cur.execute("EXPLAIN (FORMAT JSON) " + statement, measure.parameters(r, NOW), prepare=False)
            plan = json.dumps(cur.fetchone()[0])  # type: ignore[index]
        assert "Seq Scan" not in plan, (watch, filters, plan)
        assert "Index" in plan, (watch, filters)


def test_cost_is_the_priced_rounds_cost(filled: psycopg.Connection[Any]) -> None:
    filled.execute("UPDATE round_metrics SET cost_usd = 0.25 WHERE model = 'a' AND round_id <> 'old-r'")
    assert one(measure.measure_tables(filled, rule("cost_usd"), NOW)) == (2.5, 10)
    assert sorted(measure.measure_tables(filled, rule("cost_usd", group_by="model"), NOW)) == [
        Reading("model=a", 2.5, 10),
        Reading("model=b", 0.0, 0),
    ]
