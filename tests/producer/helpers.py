"""Helpers shared by the producer's tests (and the cluster's): sample calls, a queue-less
Publisher, realistic call streams. Plain functions and data, no fixtures."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from typing import Any

from producer import ProducerSettings, Publisher
from producer.calls import EventCalls
from producer.hints import HintWriter
from producer.histories import EVENT_TYPE_OF, agent_calls
from producer.metrics import Counters

SAMPLES: dict[str, dict[str, Any]] = {
    "session_started": {"session_id": "s-1", "model": "gpt-4o", "user_id": "u-7"},
    "session_message_count": {"session_id": "s-1", "message_count": 12},
    "session_completed": {"session_id": "s-1", "status": "awaiting_response"},
    "round_started": {"round_id": "r-1", "session_id": "s-1", "model": "gpt-4o", "provider": "openai"},
    "round_completed": {
        "round_id": "r-1",
        "session_id": "s-1",
        "status": "error",
        "usage": {
            "prompt_tokens": 10,
            "completion_tokens": 2,
            "total_tokens": 12,
            "cache_read_tokens": 6,
            "cache_write_tokens": 4,
            "reasoning_tokens": 2,
        },
        "prompt_cached_tool_outputs": 3,
        "error": 'boom "quoted" \\ back\nslash ✓',
        "time_to_first_token_ms": 0,
    },
    "round_compressed": {"round_id": "r-1", "session_id": "s-1", "tokens_saved": 2**63 - 1},
    "tool_started": {"tool_call_id": "t-1", "round_id": "r-1", "session_id": "s-1", "tool_name": "read_file"},
    "tool_completed": {
        "tool_call_id": "t-1",
        "round_id": "r-1",
        "session_id": "s-1",
        "success": False,
        "error": None,
    },
    "forward_started": {
        "forward_id": "f-1",
        "endpoint": "/v1/chat",
        "model": "gpt-4o",
        "is_stream": True,
        "provider": "aws.bedrock",
        "session_id": "s-1",
        "round_id": "r-1",
    },
    "forward_completed": {
        "forward_id": "f-1",
        "status": "success",
        "status_code": 200,
        "usage": {
            "prompt_tokens": 1,
            "completion_tokens": 2,
            "total_tokens": 3,
            "cache_read_tokens": 1,
            "cache_write_tokens": None,
            "reasoning_tokens": 0,
        },
        "error": None,
        "time_to_first_token_ms": 2**63 - 1,
    },
    "sync_mismatch": {"reason": "counts differ"},
}


class Capture(EventCalls):
    """The Publisher's typed calls with a list for a sink: no outbox, no thread, no Redis."""

    def __init__(self, settings: ProducerSettings | None = None) -> None:
        s = settings or ProducerSettings()
        self.items: list[tuple[Any, ...]] = []
        hints = HintWriter(s.keys, s.heartbeat_interval, s.heartbeat_ttl)
        super().__init__(self, hints, Counters(), s.remember_completed)

    def put(self, item: tuple[Any, ...]) -> None:
        self.items.append(item)

    def wake(self) -> None:
        pass


def event_calls(count: int, seed: int = 1) -> Iterator[tuple[str, dict[str, Any]]]:
    """Realistic calls (all event types, liveness hints too) until ``count`` events."""
    made = 0
    for call in agent_calls(random.Random(seed), 10**6):
        yield call
        if call[0] in EVENT_TYPE_OF:
            made += 1
            if made == count:
                return


def publish(pub: Publisher, calls: Iterator[tuple[str, dict[str, Any]]]) -> list[float]:
    """Make the calls; the time each took."""
    took = []
    for method, kwargs in calls:
        start = time.perf_counter()
        getattr(pub, method)(**kwargs)
        took.append(time.perf_counter() - start)
    return took
