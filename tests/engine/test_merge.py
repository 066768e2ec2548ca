"""The per-key merge alone (no database): order and repetition of a batch do not matter."""

from __future__ import annotations

import random
from dataclasses import asdict

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.engine.histories import coherent_history, deliveries
from worker.engine.merge import Plan, plan


def _rows(p: Plan) -> dict[str, dict[str, dict[str, object]]]:
    return {
        name: {key: asdict(row) for key, row in getattr(p, name).items()}
        for name in ("sessions", "rounds", "tools", "forwards", "compressions", "mismatches")
    }


@settings(max_examples=300, deadline=None)
@given(rng=st.randoms(use_true_random=False))
def test_plan_is_independent_of_order_and_duplicates(rng: random.Random) -> None:
    history = coherent_history(rng, sessions=3)
    assert _rows(plan(deliveries(rng, history))) == _rows(plan(history))


def test_one_row_per_key_with_the_rules_of_the_seed() -> None:
    history = coherent_history(random.Random(4), sessions=4, max_rounds=4)
    p = plan(history)
    assert len(p.rounds) == len({e.round_id for e in history if e.type.startswith("round.")})
    for round_id, row in p.rounds.items():
        starts = sorted(
            (e for e in history if e.type == "round.started" and e.round_id == round_id),
            key=lambda e: e.order_key,
        )
        assert row.start_version == starts[0].order_key  # the first start is kept
    for tool_id, row in p.tools.items():
        starts = sorted(
            (e for e in history if e.type == "tool.started" and e.tool_call_id == tool_id),
            key=lambda e: e.order_key,
        )
        assert row.start_version == starts[-1].order_key  # the latest start wins
    for fwd in p.forwards.values():  # a completion never survives a later start
        assert fwd.completion_version is None or fwd.completion_version > (fwd.start_version or "")
