"""Cost in storage: the worker prices each round and forward in the apply transaction at its
completion's time, for its model and provider, as genai-prices' calc_price does; unpriced is NULL
and counted, never $0; a prices file overrides and dates prices; reprice converges."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import genai_prices
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contract.events import ForwardCompleted, ForwardStarted, RoundCompleted
from tests.engine.costs import EXAMPLE_USD, example_history, priced_round, usage
from tests.engine.histories import coherent_history, deliveries, split
from tests.engine.rollups import assert_rollups_match
from tests.maintenance.helpers import aggregate_drift
from worker import cli
from worker.backfill import backfill, pending
from worker.engine.apply import apply_events, prepare, start
from worker.engine.costing import Pricer
from worker.engine.pricing import BUNDLED, PriceList, TokenUsage
from worker.maintenance.reprice import reprice
from worker.schema import apply_schema

T = datetime(2026, 2, 10, 10, tzinfo=UTC)


def _costs(conn: psycopg.Connection) -> dict[str, tuple[object, ...]]:
    rows = conn.execute(
        "SELECT round_id, cost_usd, cost_source, unpriced FROM round_metrics "
        "UNION ALL SELECT forward_id, cost_usd, cost_source, unpriced FROM forward_request_metrics"
    ).fetchall()
    return {r[0]: tuple(r[1:]) for r in rows}


def _everything(conn: psycopg.Connection) -> tuple[object, ...]:
    sessions = conn.execute("SELECT session_id, cost_usd, unpriced_rounds FROM session_metrics ORDER BY 1")
    rollup = conn.execute(
        "SELECT day, model, provider, sum(priced), sum(unpriced), sum(cost_usd) FROM round_cost_rollup "
        "GROUP BY 1, 2, 3 HAVING (sum(priced), sum(unpriced), sum(cost_usd)) <> (0, 0, 0) ORDER BY 1, 2, 3"
    )
    return (_costs(conn), sessions.fetchall(), rollup.fetchall())


def test_the_hand_computed_example(conn: psycopg.Connection) -> None:
    apply_events(conn, example_history(T))
    costs = _costs(conn)
    assert costs["r1"] == (EXAMPLE_USD, BUNDLED, False)
    assert costs["f1"] == (EXAMPLE_USD, BUNDLED, False)
    assert costs["r2"] == (None, None, True)  # unknown model: NULL and counted, never 0
    assert conn.execute("SELECT cost_usd, unpriced_rounds FROM session_metrics").fetchone() == (
        EXAMPLE_USD,
        1,
    )
    by_model = conn.execute(
        "SELECT model, sum(priced), sum(unpriced), sum(cost_usd) FROM round_cost_rollup GROUP BY 1 ORDER BY 1"
    ).fetchall()
    assert by_model == [("acme-unknown-9", 0, 1, 0), ("gpt-4o", 1, 0, EXAMPLE_USD)]
    # no day folded yet: the forwards are in their hours
    assert conn.execute("SELECT sum(cost_usd), sum(priced) FROM forward_hourly").fetchone() == (
        EXAMPLE_USD,
        1,
    )
    assert conn.execute(
        "SELECT user_id, sum(cost_usd), sum(unpriced_rounds) FROM user_cost_rollup GROUP BY 1"
    ).fetchall() == [("u1", EXAMPLE_USD, 1)]
    assert_rollups_match(conn)


def test_the_completion_before_the_start_in_another_batch(conn: psycopg.Connection) -> None:
    start, done = priced_round(T, "r1", "s1")
    apply_events(conn, [done])
    assert _costs(conn)["r1"] == (None, None, False)  # no model yet: not priceable, not counted
    apply_events(conn, [start])
    assert _costs(conn)["r1"] == (EXAMPLE_USD, BUNDLED, False)
    apply_events(conn, [done, start])  # redelivered: nothing moves
    assert conn.execute("SELECT cost_usd FROM session_metrics").fetchone() == (EXAMPLE_USD,)
    assert_rollups_match(conn)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rng=st.randoms(use_true_random=False))
def test_stored_costs_equal_calc_price_for_any_delivery(conn: psycopg.Connection, rng: random.Random) -> None:
    for table in (
        "session_metrics",
        "round_metrics",
        "tool_call_metrics",
        "forward_request_metrics",
        "applied_counter_events",
    ):
        conn.execute(f"DELETE FROM {table}")
    # Plus a round surely priced, with every usage part, its start and completion apart.
    parts = usage(5_000, 700, cache_read_tokens=1_000, cache_write_tokens=500, reasoning_tokens=300)
    history = coherent_history(rng) + priced_round(T, "priced-r", "priced-s", "o3", "openai", parts)
    for batch in split(rng, deliveries(rng, history)):
        apply_events(conn, batch)
    rows = conn.execute(
        "SELECT model, provider, completed_at, prompt_tokens, completion_tokens, cache_read_tokens, "
        "cache_write_tokens, reasoning_tokens, cost_usd FROM round_metrics WHERE cost_usd IS NOT NULL"
    ).fetchall()
    for model, provider, at, prompt, completion, cache_read, cache_write, reasoning, cost in rows:
        expected = genai_prices.calc_price(
            genai_prices.Usage(
                input_tokens=prompt,
                cache_read_tokens=cache_read or 0,
                cache_write_tokens=cache_write or 0,
                output_tokens=completion,
                output_reasoning_tokens=reasoning or 0,
            ),
            model,
            provider_id=provider,
            genai_request_timestamp=at,
        ).total_price
        assert cost == expected
    assert len(rows) >= 1
    assert aggregate_drift(conn) == []
    assert_rollups_match(conn)


def _file(tmp_path: Path, text: str) -> PriceList:
    path = tmp_path / "prices.toml"
    path.write_text(text)
    return PriceList.load(path)


def test_a_price_change_prices_each_side_differently(conn: psycopg.Connection, tmp_path: Path) -> None:
    prices = _file(
        tmp_path,
        """
[[price]]
model = "acme-large"
input_mtok = 1
output_mtok = 2
[[price]]
model = "acme-large"
valid_from = 2026-02-11
input_mtok = 10
output_mtok = 20
""",
    )
    tokens = usage(1_000_000, 1_000_000)
    before = priced_round(T, "before", "s1", model="acme-large", provider=None, tokens=tokens)
    after = priced_round(
        T + timedelta(days=1), "after", "s1", model="acme-large", provider=None, tokens=tokens
    )
    apply_events(conn, after + before, prices)
    costs = _costs(conn)
    source = f"file:{tmp_path / 'prices.toml'}"
    assert costs["before"] == (Decimal(3), source, False)
    assert costs["after"] == (Decimal(30), source, False)
    assert conn.execute("SELECT cost_usd FROM session_metrics").fetchone() == (Decimal(33),)
    assert_rollups_match(conn)


def test_the_prices_file_overrides_and_reprice_equals_a_fresh_apply(
    conn: psycopg.Connection, db_url: str, tmp_path: Path
) -> None:
    history = example_history(T)
    apply_events(conn, history)  # the bundled list: r1 $3.25, r2 unpriced
    own = _file(
        tmp_path,
        """
[[price]]
model = "gpt-4o"
input_mtok = 1
output_mtok = 1
[[price]]
model = "acme-unknown-9"
input_mtok = 100
output_mtok = 100
""",
    )
    counts = reprice(conn, own, chunk_size=1)
    assert counts["rounds_changed"] == 2 and counts["forwards_changed"] == 1
    costs = _costs(conn)
    assert costs["r1"][0] == Decimal("1.1") and costs["r2"][0] == Decimal("0.0015")  # 1.1M x $1; 15 x $100
    repriced = _everything(conn)
    assert aggregate_drift(conn) == []
    assert_rollups_match(conn)
    assert reprice(conn, own)["rounds_changed"] == 0  # twice changes nothing
    assert _everything(conn) == repriced
    with psycopg.connect(db_url, autocommit=True) as fresh:
        for table in (
            "session_metrics",
            "round_metrics",
            "forward_request_metrics",
            "applied_counter_events",
        ):
            fresh.execute(f"DELETE FROM {table}")
        apply_events(fresh, history, own)
        assert _everything(fresh) == repriced
    # Back to the bundled list, only gpt-4o: r2 keeps the file's price.
    counts = reprice(conn, PriceList(), model="gpt-4o")
    assert counts == {
        "rounds_examined": 1,
        "rounds_changed": 1,
        "forwards_examined": 1,
        "forwards_changed": 1,
    }
    assert _costs(conn)["r1"][0] == EXAMPLE_USD and _costs(conn)["r2"][0] == Decimal("0.0015")
    assert_rollups_match(conn)


def test_a_bad_prices_file_stops_the_worker_and_reprice_with_one_line(
    db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "prices.toml"
    bad.write_text('[[price]]\nmodel = "acme"\ninput_mtok = 1\noutput_mtok = -2\n')
    for argv in (["run", "--burst", "--redis-url", "redis://127.0.0.1:1/0"], ["reprice"]):
        assert cli.main([*argv, "--prices-file", str(bad), "--database-url", db_url]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1
        assert "price entry 1 (model 'acme'): field 'output_mtok' = -2" in err


def test_metrics_worker_reprice_prints_what_changed_and_twice_nothing(
    conn: psycopg.Connection, db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    apply_events(conn, example_history(T))
    own = tmp_path / "prices.toml"
    own.write_text('[[price]]\nmodel = "acme-unknown-9"\ninput_mtok = 100\noutput_mtok = 100\n')
    for changed in (1, 0):
        argv = ["reprice", "--since", "2026-02-10", "--model", "acme-unknown-9", "--prices-file", str(own)]
        assert cli.main([*argv, "--database-url", db_url]) == 0
        line = json.loads(capsys.readouterr().out)
        assert (line["job"], line["rounds_examined"], line["rounds_changed"]) == ("reprice", 1, changed)
    assert conn.execute("SELECT cost_usd, unpriced_rounds FROM session_metrics").fetchone() == (
        EXAMPLE_USD + Decimal("0.0015"),
        0,
    )
    with pytest.raises(SystemExit) as exited:
        cli.main(["reprice", "--since", "2026-13-01", "--database-url", db_url])
    assert exited.value.code == 2
    assert "'2026-13-01' is not a date (write YYYY-MM-DD)" in capsys.readouterr().err


# What the version before cost did not have (its rows are kept; they lose their cost columns); its
# round trigger was the hourly roll-up's.
_DROP_COST = """
ALTER TRIGGER round_rollups_insert ON round_metrics RENAME TO round_hourly_insert;
ALTER TRIGGER round_rollups_update ON round_metrics RENAME TO round_hourly_update;
ALTER TRIGGER round_rollups_delete ON round_metrics RENAME TO round_hourly_delete;
DROP TABLE round_cost_rollup, user_cost_rollup, user_model_cost_rollup, user_cost_monthly, forward_hourly;
ALTER TABLE latency_fold DROP COLUMN months_upto;
ALTER TABLE session_metrics DROP COLUMN cost_usd, DROP COLUMN unpriced_rounds;
ALTER TABLE round_metrics DROP COLUMN cost_usd, DROP COLUMN cost_source, DROP COLUMN unpriced;
ALTER TABLE forward_request_metrics DROP COLUMN cost_usd, DROP COLUMN cost_source, DROP COLUMN unpriced;
ALTER TABLE forward_rollup DROP COLUMN cost_usd, DROP COLUMN priced, DROP COLUMN unpriced;
ALTER TABLE round_hourly DROP COLUMN cost_usd, DROP COLUMN unpriced, DROP COLUMN priced;
DELETE FROM rollup_backfill WHERE entity = 'rounds';
ALTER TABLE rollup_backfill DROP CONSTRAINT rollup_backfill_entity_check,
    ADD CONSTRAINT rollup_backfill_entity_check CHECK (entity IN (
        'sessions', 'tool_calls', 'forwards', 'round_hourly', 'tool_latency', 'forward_latency'));
"""


def test_a_database_of_the_version_before_cost_is_upgraded_then_repriced(
    conn: psycopg.Connection, db_url: str
) -> None:
    history = coherent_history(random.Random(5), sessions=6) + example_history(T)
    apply_events(conn, history)
    priced = _everything(conn)
    conn.execute(_DROP_COST)
    apply_schema(conn, force=True)
    # the hourly roll-up gains its cost too; the forwards are counted by hour, the sessions by user and model
    assert pending(conn) == ["forwards", "round_hourly", "rounds", "sessions"]
    assert backfill(conn, chunk_size=3)["rounds"] > 0
    assert_rollups_match(conn)  # nothing priced yet: every cost roll-up empty, and exact
    assert conn.execute("SELECT count(*) FROM round_cost_rollup").fetchone() == (0,)
    reprice(conn, PriceList(), chunk_size=4)
    assert _everything(conn) == priced
    assert aggregate_drift(conn) == []
    assert_rollups_match(conn)


def test_a_guess_from_a_remembered_start_that_turns_out_wrong_is_priced_again(
    conn: psycopg.Connection,
) -> None:
    late_start, done = priced_round(T + timedelta(seconds=1), "r1", "s1")  # gpt-4o, started later
    early_start = priced_round(T, "r1", "s1", model="o3")[0]  # the earliest start wins
    apply_events(conn, [late_start])
    apply_events(conn, [done])  # priced before sending, from the remembered start: gpt-4o
    assert _costs(conn)["r1"] == (EXAMPLE_USD, BUNDLED, False)
    apply_events(conn, [early_start])  # the row's model becomes o3: the guess no longer holds
    expected = PriceList().price(
        TokenUsage(1_000_000, 100_000, 200_000), "o3", "openai", T + timedelta(seconds=1)
    )
    assert expected is not None and expected.usd != EXAMPLE_USD
    assert _costs(conn)["r1"] == (expected.usd, BUNDLED, False)
    assert conn.execute("SELECT cost_usd FROM session_metrics").fetchone() == (expected.usd,)
    assert_rollups_match(conn)


def test_completions_whose_starts_the_worker_saw_commit_without_a_read_back(conn: psycopg.Connection) -> None:
    history = example_history(T)
    starts = [ev for ev in history if not isinstance(ev, RoundCompleted | ForwardCompleted)]
    completions = [ev for ev in history if isinstance(ev, RoundCompleted | ForwardCompleted)]
    pricer = Pricer(PriceList())
    start(conn, prepare(starts, pricer)).wait()
    later = prepare(completions, pricer)
    assert later.guarded is not None  # every completion priced before sending: COMMIT goes with it
    start(conn, later).wait()
    assert prepare(completions, Pricer(PriceList())).guarded is None  # starts unseen: read back
    fresh = _everything(conn)
    for table in ("session_metrics", "round_metrics", "forward_request_metrics"):
        conn.execute(f"DELETE FROM {table}")
    apply_events(conn, history)
    assert _everything(conn) == fresh
    assert _costs(conn)["f1"] == (EXAMPLE_USD, BUNDLED, False)
    assert_rollups_match(conn)


def test_a_forward_whose_start_another_worker_replaced_is_priced_again_under_its_lock(
    conn: psycopg.Connection,
) -> None:
    history = example_history(T)
    (f_start,) = [ev for ev in history if isinstance(ev, ForwardStarted)]
    (f_done,) = [ev for ev in history if isinstance(ev, ForwardCompleted)]
    mine = Pricer(PriceList())
    start(conn, prepare([f_start], mine)).wait()  # this worker remembers gpt-4o
    # Another worker applies a later start of the same request, for o3 (the latest start wins).
    restart = f_start.model_copy(
        update={"event_id": "f1-s2", "model": "o3", "occurred_at": T + timedelta(microseconds=1)}
    )
    start(conn, prepare([restart], Pricer(PriceList()))).wait()
    done = f_done.model_copy(update={"occurred_at": T + timedelta(seconds=1)})
    guessed = prepare([done], mine)
    assert guessed.guarded is not None  # priced for gpt-4o: wrong, the row is o3's now
    start(conn, guessed).wait()  # stopped by the guard (MP001), sent again with the read-back
    expected = PriceList().price(
        TokenUsage(1_000_000, 100_000, 200_000), "o3", "openai", T + timedelta(seconds=1)
    )
    assert expected is not None and expected.usd != EXAMPLE_USD
    assert _costs(conn)["f1"] == (expected.usd, BUNDLED, False)
    assert_rollups_match(conn)


def test_a_forward_started_again_after_its_completion_loses_its_cost(conn: psycopg.Connection) -> None:
    history = example_history(T)
    forward = [ev for ev in history if isinstance(ev, ForwardStarted | ForwardCompleted)]
    unknown = [ev.model_copy(update={"model": "acme-unknown-9"}) if isinstance(ev, ForwardStarted) else ev
               for ev in forward]  # fmt: skip
    apply_events(conn, unknown)
    assert _costs(conn)["f1"] == (None, None, True)  # unpriced: no list knows the model
    (f_start,) = [ev for ev in unknown if isinstance(ev, ForwardStarted)]
    again = f_start.model_copy(update={"event_id": "f1-s2", "occurred_at": T + timedelta(seconds=1)})
    apply_events(conn, [again])  # a later start resets the completion: nothing to price
    assert _costs(conn)["f1"] == (None, None, False)
    assert_rollups_match(conn)
