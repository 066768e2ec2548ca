"""Unit: the sender's hand-written JSON is the contract's JSON, for every event type."""

from __future__ import annotations

import inspect
import json
import random
import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contract import EVENT_TYPES, decode, encode
from contract.keys import Keys
from producer import Publisher
from producer.wire import PREBUILT, WIRE_TYPES, Encoder, format_datetime
from tests.producer.conftest import quick_settings
from tests.producer.helpers import SAMPLES, Capture


@pytest.fixture
def capture(tmp_path: Path) -> Capture:
    return Capture(quick_settings(spool_dir=tmp_path))  # the spool is never touched


def test_wire_types_follow_the_contract_field_order() -> None:
    meta = {"v", "event_id", "occurred_at", "type"}
    by_type = {cls.model_fields["type"].default: cls for cls in EVENT_TYPES}
    assert {w.type for w in WIRE_TYPES} == set(by_type)
    for wire in WIRE_TYPES:
        model_fields = [f for f in by_type[wire.type].model_fields if f not in meta]
        assert list(wire.fields) == model_fields
        method = getattr(Publisher, wire.type.replace(".", "_"))
        params = [p for p in inspect.signature(method).parameters if p != "self"]
        assert params[: len(wire.fields)] == list(wire.fields)


def _without_nulls(document: Any) -> Any:
    if isinstance(document, dict):
        return {k: _without_nulls(v) for k, v in document.items() if v is not None}
    return document


@pytest.mark.parametrize("method", sorted(SAMPLES))
def test_every_event_type_encodes_to_valid_contract_json(capture: Capture, method: str) -> None:
    before = datetime.now(UTC)
    getattr(capture, method)(**SAMPLES[method])
    stream, payload = Encoder(Keys())(capture.items[0])
    event = decode(payload)
    assert stream == "metrics:events"
    assert event.type == method.replace("_", ".", 1)
    dumped = event.model_dump(mode="json", exclude={"v", "type", "event_id", "occurred_at"})
    assert dumped == SAMPLES[method]
    assert uuid.UUID(event.event_id).version == 7
    assert before - timedelta(seconds=1) <= event.occurred_at <= datetime.now(UTC)
    # Same document as the contract's own encoder writes (an optional field left out or null alike).
    assert _without_nulls(json.loads(payload)) == _without_nulls(json.loads(encode(event)))


#: The optional fields new in contract v1 by method, and the usage parts: a call without them writes
#: none of them (absent: not reported), so what an older worker reads is unchanged.
OPTIONAL = {
    "session_started": {"user_id"},
    "round_started": {"provider"},
    "round_completed": {"time_to_first_token_ms"},
    "forward_started": {"provider", "session_id", "round_id"},
    "forward_completed": {"time_to_first_token_ms"},
}
PARTS = {"cache_read_tokens", "cache_write_tokens", "reasoning_tokens"}


@pytest.mark.parametrize("method", sorted(OPTIONAL))
def test_optional_fields_left_out_are_not_written(capture: Capture, method: str) -> None:
    required = {k: v for k, v in SAMPLES[method].items() if k not in OPTIONAL[method]}
    if isinstance(required.get("usage"), dict):
        required["usage"] = {k: v for k, v in required["usage"].items() if k not in PARTS}
    getattr(capture, method)(**required)
    payload = json.loads(Encoder(Keys())(capture.items[0])[1])
    assert not (set(payload) | set(payload.get("usage") or {})) & (OPTIONAL[method] | PARTS)
    event = decode(json.dumps(payload))
    assert all(getattr(event, name) is None for name in OPTIONAL[method])


def test_usage_parts_are_checked_at_the_call_naming_part_and_whole(capture: Capture) -> None:
    with pytest.raises(ValueError, match=r"cache_read_tokens \(11\) is larger than prompt_tokens \(10\)"):
        capture.round_completed("r", "s", "success", (10, 5), cache_read_tokens=11)
    with pytest.raises(ValueError, match=r"cache_read_tokens \+ cache_write_tokens \(6 \+ 5\) is larger than "
                                         r"prompt_tokens \(10\)"):  # fmt: skip
        usage = {"prompt_tokens": 10, "completion_tokens": 5, "cache_read_tokens": 6}
        capture.round_completed("r", "s", "success", usage, cache_write_tokens=5)
    with pytest.raises(ValueError, match=r"reasoning_tokens \(6\) is larger than completion_tokens \(5\)"):
        capture.forward_completed("f", "success", 200, (10, 5), reasoning_tokens=6)
    with pytest.raises(ValueError, match="reasoning_tokens: given without a usage"):
        capture.forward_completed("f", "success", 200, None, reasoning_tokens=6)
    with pytest.raises(ValueError, match="time_to_first_token_ms: must be an int between 0"):
        capture.round_completed("r", "s", "success", (10, 5), time_to_first_token_ms=-1)
    with pytest.raises(ValueError, match="provider: must be a non-empty str"):
        capture.round_started("r", "s", "gpt-4o", provider="")
    with pytest.raises(ValueError, match="user_id: must be a non-empty str"):
        capture.session_started("s", "gpt-4o", user_id="x" * 129)
    assert capture.items == []
    # A keyword part wins over the usage's own; the others are kept.
    capture.round_completed("r", "s", "success", {"prompt_tokens": 10, "completion_tokens": 5,
                                                  "cache_read_tokens": 9, "reasoning_tokens": 1},
                            cache_read_tokens=4)  # fmt: skip
    usage = decode(Encoder(Keys())(capture.items[0])[1]).usage  # type: ignore[union-attr]
    assert (usage.cache_read_tokens, usage.cache_write_tokens, usage.reasoning_tokens) == (4, None, 1)


def test_given_event_id_and_occurred_at_are_kept(capture: Capture) -> None:
    at = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=timezone(timedelta(hours=2)))
    capture.sync_mismatch("x", event_id='id-with-"quote"', occurred_at=at)
    event = decode(Encoder(Keys())(capture.items[0])[1])
    assert event.event_id == 'id-with-"quote"'
    assert event.occurred_at == at and event.occurred_at.utcoffset() == timedelta(0)


def test_usage_accepts_a_model_a_mapping_or_a_tuple(capture: Capture) -> None:
    from contract import TokenUsage

    for usage in (
        TokenUsage(prompt_tokens=5, completion_tokens=1, total_tokens=6),
        {"prompt_tokens": 5, "completion_tokens": 1},
        (5, 1),
        [5, 1, 6],
    ):
        capture.round_completed("r", "s", "success", usage)
    events = [decode(Encoder(Keys())(item)[1]) for item in capture.items]
    assert {e.usage.total_tokens for e in events} == {6}  # type: ignore[union-attr]


def test_prebuilt_events_pass_through_unchanged(capture: Capture) -> None:
    capture.tool_started("t", "r", "s-9", "bash")
    original = decode(Encoder(Keys())(capture.items[0])[1])
    capture.publish(original)
    assert capture.items[1][0] is PREBUILT
    keys = Keys(stream="x", shards=4)
    stream, payload = Encoder(keys)(capture.items[1])
    assert decode(payload) == original
    assert stream == keys.stream_for("s-9")


def test_shards_route_by_session_or_forward_id(capture: Capture) -> None:
    keys = Keys(stream="m", shards=8)
    encoder = Encoder(keys)
    capture.round_started("r", "session-a", "m1")
    capture.forward_started("fwd-b", "/e", "m1", False)
    capture.sync_mismatch("why")
    streams = [encoder(item)[0] for item in capture.items]
    assert streams == [keys.stream_for("session-a"), keys.stream_for("fwd-b"), keys.stream_for("why")]


def test_uuid7_ids_increase_and_carry_the_call_time() -> None:
    encoder = Encoder(Keys(), random.Random(7))
    base = 1_800_000_000_000_000_000
    ids = [encoder.uuid7(base + step * 10_000) for step in range(5000)]  # many per millisecond
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    parsed = uuid.UUID(ids[0])
    assert parsed.version == 7 and parsed.variant == uuid.RFC_4122
    assert parsed.int >> 80 == base // 1_000_000
    assert encoder.uuid7(base - 10**9) > ids[-1]  # a clock step back keeps ids increasing


def test_timestamps_are_utc_with_microseconds() -> None:
    encoder = Encoder(Keys())
    assert encoder.stamp(1_800_000_000_123_456_789) == "2027-01-15T08:00:00.123456Z"
    early = datetime(999, 5, 6, 7, 8, 9, 10, tzinfo=UTC)
    assert format_datetime(early) == "0999-05-06T07:08:09.000010Z"


_text = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1, max_size=40
)


@settings(max_examples=150, deadline=None)
@given(session_id=_text, tool_name=_text, error=st.none() | _text)
def test_any_text_round_trips(session_id: str, tool_name: str, error: str | None) -> None:
    capture = Capture(quick_settings(spool_dir=Path("/nonexistent")))
    capture.tool_completed("t", "r", session_id, True, error)
    capture.tool_started("t", "r", session_id, tool_name)
    encoder = Encoder(Keys())
    done, started = (decode(encoder(item)[1]) for item in capture.items)
    assert done.session_id == session_id and done.error == error  # type: ignore[union-attr]
    assert started.tool_name == tool_name  # type: ignore[union-attr]
