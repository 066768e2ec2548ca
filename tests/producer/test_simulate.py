"""Unit: simulated histories are causally coherent and cover every event type."""

from __future__ import annotations

import random
import statistics
from collections import Counter, defaultdict

from contract import EVENT_TYPES
from producer.histories import agent_calls, agent_events


def test_histories_are_causally_coherent() -> None:
    events = list(agent_events(random.Random(11), sessions=60))
    assert {type(e) for e in events} == set(EVENT_TYPES)
    per_session: dict[str, list] = defaultdict(list)
    forwards: dict[str, list[str]] = defaultdict(list)
    links = set()
    for event in events:
        if hasattr(event, "forward_id"):  # before session_id: a forward may name its session
            forwards[event.forward_id].append(event.type)
            if getattr(event, "session_id", None) is not None:
                links.add(event.session_id)
        elif hasattr(event, "session_id"):
            per_session[event.session_id].append(event)
    assert len(per_session) == 60
    assert links and links <= set(per_session)  # forwards made for a session name one that exists
    statuses = Counter()
    for history in per_session.values():
        assert history[0].type == "session.started" and history[-1].type == "session.completed"
        statuses[history[-1].status] += 1
        open_rounds: set[str] = set()
        open_tools: set[str] = set()
        for event in history[1:-1]:
            if event.type == "round.started":
                open_rounds.add(event.round_id)
            elif event.type == "round.completed":
                assert not open_tools
                open_rounds.remove(event.round_id)
            elif event.type.startswith("tool.") or event.type == "round.compressed":
                assert event.round_id in open_rounds
                if event.type == "tool.started":
                    open_tools.add(event.tool_call_id)
                elif event.type == "tool.completed":
                    open_tools.remove(event.tool_call_id)
        assert not open_rounds
    assert set(statuses) <= {"completed", "awaiting_response", "error", "cancelled"}
    assert statuses["completed"] > statuses["error"] > 0
    assert all(history == ["forward.started", "forward.completed"] for history in forwards.values())
    times = [e.occurred_at for e in events]
    ids = [e.event_id for e in events]
    assert times == sorted(times) and ids == sorted(ids)


def test_the_calls_are_repeatable_and_interleave_sessions() -> None:
    first = list(agent_calls(random.Random(5), 20))
    assert first == list(agent_calls(random.Random(5), 20))
    starts = [i for i, (method, _) in enumerate(first) if method == "session_started"]
    ends = [i for i, (method, _) in enumerate(first) if method == "session_completed"]
    assert starts[1] < ends[0]  # a second session starts before the first ends
    assert {"session_awaiting", "session_resumed"} <= {method for method, _ in first}


_KEY_OF = {"round": "round_id", "tool": "tool_call_id", "forward": "forward_id"}


def test_durations_and_outcomes_are_plausible() -> None:
    """Rounds take seconds, tools milliseconds to seconds (a timeout as long as it says), forwards
    seconds (a timeout 60 s); errors, timeouts, compressions and mismatches all occur."""
    events = list(agent_events(random.Random(3), sessions=300))
    started: dict[tuple[str, str], object] = {}
    took: dict[str, list[float]] = defaultdict(list)
    outcomes: Counter[str] = Counter()
    for e in events:
        kind, _, what = e.type.partition(".")
        key = getattr(
            e, {"round": "round_id", "tool": "tool_call_id", "forward": "forward_id"}.get(kind, "x"), None
        )
        if what == "started" and key:
            started[kind, key] = e.occurred_at
        elif what == "completed" and key and (kind, key) in started:
            seconds = (e.occurred_at - started[kind, key]).total_seconds()  # type: ignore[operator]
            took[kind].append(seconds)
            outcome = getattr(e, "status", None) or ("ok" if getattr(e, "success", True) else "failed")
            outcomes[f"{kind} {outcome}"] += 1
            if kind == "forward" and outcome == "timeout":
                assert seconds == 60
            if kind == "tool" and e.error and "timed out after 120 s" in e.error:  # type: ignore[union-attr]
                assert seconds == 120
        outcomes[e.type] += 1
    median = {kind: statistics.median(values) for kind, values in took.items()}
    assert 2 < median["round"] < 60, median
    assert 0.01 < median["tool"] < 5 and min(took["tool"]) < 0.05 and max(took["tool"]) > 10, median
    assert 1 < median["forward"] < 20, median
    for seen in ("tool failed", "round error", "forward error", "forward timeout", "round.compressed",
                 "sync.mismatch"):  # fmt: skip
        assert outcomes[seen] > 0, (seen, outcomes)
    assert outcomes["tool failed"] < outcomes["tool ok"] / 5  # failures are the exception
