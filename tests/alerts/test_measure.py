"""What each kind measures, over the base tables and the roll-ups alike; every statement whole,
and the short windows read through indexes."""

from __future__ import annotations

import ast
import inspect
import json
import math
import random
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from contract.events import SessionStarted
from tests.alerts.helpers import NOW, fill_sixty_days
from tests.engine.costs import priced_round
from tests.engine.costs import usage as tokens
from tests.read.conftest import fill
from tests.read.events import Events, usage
from worker.alerts import measure, percentiles, retire, spend, store
from worker.alerts.evaluate import Reading
from worker.alerts.rules import Rule
from worker.engine.apply import apply_events
from worker.engine.histogram import RELATIVE_ERROR

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
    "watch", ["round_error_share", "tool_error_share", "forward_error_share", "session_error_share", "tokens"]
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


def test_rounds_over_days_read_round_hourly(filled: psycopg.Connection[Any]) -> None:
    """Over days: errors / rounds started (the hourly roll-up's), a running round not failed."""
    r = rule("round_error_share", "1d")
    assert measure.statements_of(r, NOW)[0] is measure.ROUND_ERRORS_FROM_ROLLUP
    assert one(measure.measure_tables(filled, r, NOW)) == (0.25, 16)
    ev = Events()
    ev.round_started("running", "s0", "a", NOW - AGO)
    fill(filled, ev.events)
    assert one(measure.measure_tables(filled, r, NOW)) == (round(4 / 17, 4), 17)
    assert one(measure.measure_tables(filled, rule("round_error_share"), NOW)) == (0.2, 15)  # finished ones


# -- every statement whole, and the short windows through indexes -------------------------------

MODULES = (measure, percentiles, spend, store, retire)


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
    "metric": "text",
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


# -- latency over days: the hourly histograms, within 1.083% of the rows' percentile ---------------


def percentile_disc(values: list[float], q: float) -> float:
    """PostgreSQL's percentile_disc: the k-th smallest, k = max(1, ceil(q * n))."""
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


@pytest.mark.parametrize("seed", [1, 2])
def test_latency_over_days_reads_the_histograms_within_the_bucket_error(
    conn: psycopg.Connection[Any], seed: int
) -> None:
    """Rounds over two UTC days, durations and times to first token over four orders of magnitude;
    one round closed by reconcile (its duration a guess: not counted). Over ``2d`` the percentiles
    come from latency_daily, within RELATIVE_ERROR (1.083%) of percentile_disc over the same
    rounds; the base-table twin (a back-fill due) gives the same readings; a provider filter (no
    roll-up keeps it) reads the rows: percentile_disc exactly."""
    rng = random.Random(seed)
    ev = Events()
    made: list[tuple[str, str | None, float, float | None]] = []  # model, provider, ms, ttft
    for n in range(240):
        model, provider = ("a" if n % 3 else "b"), ("p" if n % 2 else None)
        at = NOW - timedelta(hours=rng.uniform(0.5, 34))  # yesterday and today (NOW is 12:00)
        ms = round(10 ** rng.uniform(1, 5))
        ttft = rng.randint(1, 3000) if n % 4 else None
        ev.session_started(f"s{n}", model, at)
        ev.round_started(f"r{n}", f"s{n}", model, at, provider=provider)
        ev.round_completed(f"r{n}", f"s{n}", at + timedelta(milliseconds=ms), usage(1, 1), ttft=ttft)
        if n:  # r0 is reconciled below
            made.append((model, provider, float(ms), None if ttft is None else float(ttft)))
    fill(conn, ev.events)
    conn.execute("UPDATE round_metrics SET completion_version = '', status = 'error' WHERE round_id = 'r0'")

    def values(watch: str, model: str | None = None, provider: str | None = None) -> list[float]:
        ttft = watch.startswith("time_to_first_token")
        return [
            (t if ttft else ms)
            for m, p, ms, t in made
            if (model is None or m == model)
            and (provider is None or p == provider)
            and not (ttft and t is None)
        ]  # type: ignore[misc]

    for watch in ("round_latency_p95", "round_latency_p99", "time_to_first_token_p95"):
        q = 0.99 if watch.endswith("p99") else 0.95
        r = rule(watch, "2d", group_by="model")
        first, twin = measure.statements_of(r, NOW)
        assert first is percentiles.ROUND_LATENCY_FROM_ROLLUP and twin is not None
        readings = sorted(measure.measure_tables(conn, r, NOW))
        assert [x.labels for x in readings] == ["model=a", "model=b"]
        for reading, model in zip(readings, ("a", "b"), strict=True):
            exact = percentile_disc(values(watch, model), q)
            assert reading.samples == len(values(watch, model))
            assert reading.value is not None and reading.value != exact  # a bucket's value, not a row's
            assert abs(reading.value - exact) <= RELATIVE_ERROR * exact, (watch, model, reading.value, exact)
        with conn.transaction():
            conn.execute("UPDATE rollup_backfill SET done = false WHERE entity = 'round_hourly'")
            assert sorted(measure.measure_tables(conn, r, NOW)) == readings
            conn.execute("UPDATE rollup_backfill SET done = true WHERE entity = 'round_hourly'")
        (a,) = measure.measure_tables(conn, rule(watch, "2d", filters=(("model", "a"),)), NOW)
        assert (a.labels, a.value, a.samples) == ("", readings[0].value, readings[0].samples)
        by_provider = rule(watch, "2d", filters=(("provider", "p"),))
        assert measure.statements_of(by_provider, NOW)[1] is None  # no roll-up keeps providers
        (p,) = measure.measure_tables(conn, by_provider, NOW)
        assert (p.value, p.samples) == (
            percentile_disc(values(watch, provider="p"), q),
            len(values(watch, provider="p")),
        )


# -- cost by user and by provider over days: the roll-ups that keep those keys -----------------


def test_cost_by_user_and_provider(conn: psycopg.Connection[Any]) -> None:
    """gpt-4o at $2.50 / $1.25 (cached) / $10 per million tokens, hand-computed: u1's session a1
    (today) $3.25 + $1.00; u1's a2 (yesterday) $1.00 yesterday and $0.25 today; u2's b1 (today)
    $0.25; c1 (today, no user) $3.25. Under a day: the rounds started in the window, through their
    session; over days: the sessions the user started on those days (user_cost_rollup); by
    provider over days: round_cost_rollup; user and provider at once: the rows."""
    today, yesterday = NOW - AGO, NOW - timedelta(days=1)

    def session(sid: str, at: datetime, user: str | None) -> Any:
        return SessionStarted(
            event_id=f"{sid}-s", occurred_at=at, session_id=sid, model="gpt-4o", user_id=user
        )

    apply_events(
        conn,
        [
            session("a1", today, "u1"),
            *priced_round(today, "a1-1", "a1"),  # 800k x 2.50 + 200k x 1.25 + 100k x 10 per M = $3.25
            *priced_round(today, "a1-2", "a1", tokens=tokens(400_000, 0)),  # $1.00
            session("a2", yesterday, "u1"),
            *priced_round(yesterday, "a2-1", "a2", tokens=tokens(400_000, 0)),  # $1.00
            *priced_round(today, "a2-2", "a2", tokens=tokens(100_000, 0)),  # $0.25
            session("b1", today, "u2"),
            *priced_round(today, "b1-1", "b1", tokens=tokens(100_000, 0)),  # $0.25
            session("c1", today, None),
            *priced_round(today, "c1-1", "c1"),  # $3.25
        ],
    )

    def m(r: Rule) -> list[tuple[str, float, int]]:
        return sorted(
            (x.labels, round(x.value or 0, 6), x.samples) for x in measure.measure_tables(conn, r, NOW)
        )

    u1, openai = (("user", "u1"),), (("provider", "openai"),)
    assert m(rule("cost_usd", filters=u1)) == [("", 4.5, 3)]  # 15m: the rounds, samples: priced rounds
    assert m(rule("cost_usd", group_by="user")) == [
        ("user=", 3.25, 1),
        ("user=u1", 4.5, 3),
        ("user=u2", 0.25, 1),
    ]
    assert m(rule("cost_usd", "1d", filters=u1)) == [("", 4.25, 1)]  # days: samples: days with a cost
    assert m(rule("cost_usd", "2d", filters=u1)) == [("", 5.5, 2)]
    assert m(rule("cost_usd", "1d", group_by="user")) == [("user=u1", 4.25, 1), ("user=u2", 0.25, 1)]
    assert m(rule("cost_usd", "1d", filters=openai)) == [("", 8.0, 5)]
    assert m(rule("cost_usd", "2d", group_by="provider")) == [("provider=openai", 9.0, 6)]
    assert m(rule("cost_usd", "1d", filters=u1 + openai)) == [("", 4.5, 3)]
    chosen = {
        name: measure.statements_of(r, NOW)[0]
        for name, r in {
            "user": rule("cost_usd", "1d", filters=u1),
            "provider": rule("cost_usd", "1d", filters=openai),
            "both": rule("cost_usd", "1d", filters=u1 + openai),
            "short": rule("cost_usd", group_by="user"),
        }.items()
    }
    assert chosen == {
        "user": spend.USER_COST_FROM_ROLLUP,
        "provider": spend.COST_FROM_ROLLUP,
        "both": spend.COST,
        "short": spend.COST,
    }
    for r in (rule("cost_usd", "2d", filters=u1), rule("cost_usd", "1d", group_by="user")):
        ready = m(r)
        with conn.transaction():  # a back-fill due: the base-table twin, the same answer
            conn.execute("UPDATE rollup_backfill SET done = false WHERE entity = 'sessions'")
            assert m(r) == ready
            conn.execute("UPDATE rollup_backfill SET done = true WHERE entity = 'sessions'")
