"""The cost read through the library, ``metrics-worker query cost`` and ``/v1/cost``: the same
hand-computed figures (gpt-4o, 1M prompt tokens of which 200k cached, 100k completion = $3.25),
unpriced counted and never $0, the same answer from the roll-ups and from the base rows."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal

import psycopg
import pytest

with warnings.catch_warnings():
    from starlette.exceptions import StarletteDeprecationWarning

    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

from contract.events import SessionStarted
from tests.conftest import Services
from tests.engine.costs import EXAMPLE_USD, example_history, priced_round
from tests.read.conftest import filled_schema
from worker import cli
from worker.read import queries
from worker.read.api import create_app

T = datetime(2026, 2, 10, 10, tzinfo=UTC)
DAY = date(2026, 2, 10)


@pytest.fixture(scope="module")
def url(services: Services) -> Iterator[str]:
    # The example (user u1), and a second day: a $3.25 round of user u2's session s2.
    events = [*example_history(T), *priced_round(datetime(2026, 2, 11, 9, tzinfo=UTC), "r3", "s2")]
    events.append(SessionStarted(event_id="s2-s", occurred_at=datetime(2026, 2, 11, 9, tzinfo=UTC),
                                 session_id="s2", model="gpt-4o", user_id="u2"))  # fmt: skip
    with filled_schema(services, events) as filled:
        yield filled


def test_the_library_adds_up_the_example(url: str) -> None:
    with psycopg.connect(url) as conn:
        report = queries.cost(conn, start_date=DAY, end_date=DAY)
    assert (report.round_usd, report.priced_rounds, report.unpriced_rounds) == (EXAMPLE_USD, 1, 1)
    assert (report.forward_usd, report.priced_forwards, report.unpriced_forwards) == (EXAMPLE_USD, 1, 0)
    assert [(m.model, m.round_usd, m.priced_rounds, m.unpriced_rounds) for m in report.by_model] == [
        ("gpt-4o", EXAMPLE_USD, 1, 0),
        ("acme-unknown-9", Decimal(0), 0, 1),  # unpriced: counted, its USD is no figure of it
    ]
    assert [(u.user_id, u.cost_usd, u.unpriced_rounds) for u in report.by_user] == [("u1", EXAMPLE_USD, 1)]
    assert [(s.session_id, s.cost_usd) for s in report.top_sessions] == [("s1", EXAMPLE_USD)]


def test_filters_and_both_days(url: str) -> None:
    with psycopg.connect(url) as conn:
        everything = queries.cost(conn)
        assert everything.round_usd == 2 * EXAMPLE_USD
        assert [(d.day, d.round_usd) for d in everything.by_day] == [
            (DAY, EXAMPLE_USD),
            (date(2026, 2, 11), EXAMPLE_USD),
        ]
        # Each day's rounds by model (what the dashboard stacks): the unknown model has no USD.
        assert [d.round_usd_by_model for d in everything.by_day] == [{"gpt-4o": EXAMPLE_USD}] * 2
        assert [u.user_id for u in everything.by_user] == ["u1", "u2"]
        assert [u.user_id for u in queries.cost(conn, top=1).by_user] == ["u1"]
        u2 = queries.cost(conn, user_id="u2")
        assert (u2.round_usd, u2.unpriced_rounds, [s.session_id for s in u2.top_sessions]) == (
            EXAMPLE_USD,
            0,
            ["s2"],
        )
        assert queries.cost(conn, model="acme-unknown-9").round_usd == 0
        assert queries.cost(conn, model="acme-unknown-9").unpriced_rounds == 1
        with pytest.raises(queries.QueryError):
            queries.cost(conn, top=0)


def test_the_rollups_answer_as_the_base_rows(url: str) -> None:
    with psycopg.connect(url) as conn:
        reads = [
            queries.cost(conn),
            queries.cost(conn, start_date=DAY, end_date=DAY),
            queries.cost(conn, model="gpt-4o"),
        ]
        conn.execute("UPDATE rollup_backfill SET done = false, upto = NULL")
        again = [
            queries.cost(conn),
            queries.cost(conn, start_date=DAY, end_date=DAY),
            queries.cost(conn, model="gpt-4o"),
        ]
        conn.rollback()
    assert reads == again


def test_the_cli_and_the_api_show_the_example(
    url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", url)
    assert (
        cli.main(["query", "cost", "--start-date", "2026-02-10", "--end-date", "2026-02-10", "--json"]) == 0
    )
    shown = json.loads(capsys.readouterr().out)
    assert (shown["round_usd"], shown["unpriced_rounds"], shown["forward_usd"]) == ("3.25", 1, "3.25")
    assert cli.main(["query", "cost", "--start-date", "2026-02-10", "--end-date", "2026-02-10"]) == 0
    table = capsys.readouterr().out
    assert "3.25" in table and "acme-unknown-9" in table and "unpriced rounds" in table
    assert cli.main(["query", "cost", "--csv", "--user", "u1"]) == 0
    assert "3.25" in capsys.readouterr().out
    with TestClient(create_app(url)) as client:
        answer = client.get("/v1/cost", params={"start_date": "2026-02-10", "end_date": "2026-02-10"})
        assert answer.status_code == 200
        body = answer.json()
        assert body == shown
        assert body["by_model"][1] == {
            "model": "acme-unknown-9", "round_usd": "0", "priced_rounds": 0, "unpriced_rounds": 1,
            "forward_usd": "0", "priced_forwards": 0, "unpriced_forwards": 0,
        }  # fmt: skip
        assert client.get("/v1/cost", params={"top": 0}).status_code == 422
