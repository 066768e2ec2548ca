"""The fault drills of bench/drills.py, short: each compares the database with the in-order result
of exactly the events published, and nothing may be lost or counted twice."""

from __future__ import annotations

import pytest

from bench.common import realistic_events
from bench.drills import DRILLS, run_drill
from tests.conftest import Services

pytestmark = pytest.mark.drill


@pytest.fixture(scope="module")
def events() -> list:
    return realistic_events(3000, seed=5)


@pytest.mark.parametrize("kind", list(DRILLS))
def test_drill(kind: str, events: list, services: Services) -> None:
    drill = DRILLS[kind]
    report = run_drill(
        kind,
        events,
        faults=drill.short,
        timeout=120,
        database_url=services.database_url,
        redis_url=services.redis_url,
    )
    print(report)
    assert report.faults == (1 if kind == "outage" else drill.short)
    assert (report.lost, report.double_counted) == (0, 0)
    assert report.dead_lettered == report.malformed
    if kind == "poison":
        assert report.malformed > 0
