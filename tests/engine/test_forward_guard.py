"""The guarded (no read-back) path of a forward whose start came in an earlier batch: APPLY_FORWARDS
settles the cost priced before sending in its one upsert, and a guess that does not hold (a row that
does not exist, a row that ends otherwise) still stops the transaction and the batch is sent again
with the read-back; the rare batch it cannot settle keeps FORWARD_COSTS after it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg

from contract.events import ForwardCompleted, ForwardStarted
from tests.engine.costs import EXAMPLE_USD, example_history
from tests.engine.rollups import assert_rollups_match
from worker.engine import cost_sql
from worker.engine.apply import prepare, start
from worker.engine.costing import Pricer
from worker.engine.pricing import BUNDLED, PriceList, TokenUsage

T = datetime(2026, 2, 10, 10, tzinfo=UTC)


def _forward() -> tuple[ForwardStarted, ForwardCompleted]:
    history = example_history(T)
    (f_start,) = [ev for ev in history if isinstance(ev, ForwardStarted)]
    (f_done,) = [ev for ev in history if isinstance(ev, ForwardCompleted)]
    return f_start, f_done


def _row(conn: psycopg.Connection) -> tuple[object, ...] | None:
    return conn.execute(
        "SELECT model, start_version IS NULL, cost_usd, cost_source, unpriced "
        "FROM forward_request_metrics WHERE forward_id = 'f1'"
    ).fetchone()


def _statements(prepared: object) -> list[str]:
    return [query for query, _ in getattr(prepared, "guarded", None) or []]


def test_a_completion_priced_from_an_earlier_batchs_start_is_settled_in_one_upsert(
    conn: psycopg.Connection,
) -> None:
    f_start, f_done = _forward()
    pricer = Pricer(PriceList())
    start(conn, prepare([f_start], pricer)).wait()
    guessed = prepare([f_done], pricer)
    assert guessed.guarded is not None
    assert cost_sql.FORWARD_COSTS not in _statements(guessed)  # no second UPDATE of the row
    start(conn, guessed).wait()
    row = _row(conn)
    assert row is not None and row[:5] == ("gpt-4o", False, EXAMPLE_USD, BUNDLED, False)
    assert_rollups_match(conn)


def test_a_remembered_start_whose_row_does_not_exist_stops_the_guess(conn: psycopg.Connection) -> None:
    f_start, f_done = _forward()
    pricer = Pricer(PriceList())
    prepare([f_start], pricer)  # remembered, never applied (its transaction failed, say)
    guessed = prepare([f_done], pricer)
    assert guessed.guarded is not None
    start(conn, guessed).wait()  # the row would be inserted with the guess: MP001, sent again
    assert _row(conn) == (None, True, None, None, False)  # no start: not priceable, no model
    start(conn, prepare([f_start], pricer)).wait()  # the start at last: priced under the lock
    row = _row(conn)
    assert row is not None and row[:5] == ("gpt-4o", False, EXAMPLE_USD, BUNDLED, False)
    assert_rollups_match(conn)


def test_an_older_start_after_the_remembered_one_keeps_forward_costs(conn: psycopg.Connection) -> None:
    f_start, f_done = _forward()
    later = f_start.model_copy(update={"event_id": "f1-s2", "occurred_at": T + timedelta(microseconds=1)})
    pricer = Pricer(PriceList())
    start(conn, prepare([later], pricer)).wait()  # gpt-4o, the latest start
    older = f_start.model_copy(update={"model": "o3"})  # an earlier start, delivered late
    done = f_done.model_copy(update={"occurred_at": T + timedelta(seconds=1)})
    guessed = prepare([older, done], pricer)  # priced for the remembered (later) start
    assert cost_sql.FORWARD_COSTS in _statements(guessed)
    start(conn, guessed).wait()
    expected = PriceList().price(
        TokenUsage(1_000_000, 100_000, 200_000), "gpt-4o", "openai", T + timedelta(seconds=1)
    )
    assert expected is not None
    row = _row(conn)
    assert row is not None and row[:5] == ("gpt-4o", False, expected.usd, BUNDLED, False)
    assert_rollups_match(conn)
