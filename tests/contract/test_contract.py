"""The wire contract at the model level: valid events round-trip, bad input names field and reason."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contract import ContractError, RoundCompleted, TokenUsage, decode, encode
from contract.schema import SCHEMA_FILE, render

GOOD = {
    "v": 1,
    "event_id": "01J0000000000000000000000",
    "type": "round.completed",
    "occurred_at": "2026-02-10T10:00:00.123456+02:00",
    "round_id": "r1",
    "session_id": "s1",
    "status": "success",
    "usage": {"prompt_tokens": 10, "completion_tokens": 15, "total_tokens": 25},
}


def _raw(**changes: object) -> bytes:
    data = dict(GOOD)
    for key, value in changes.items():
        if value is _DROP:
            data.pop(key)
        else:
            data[key] = value
    return json.dumps(data).encode()


_DROP = object()


def test_valid_event_decodes_keeps_microseconds_and_normalises_to_utc() -> None:
    ev = decode(_raw(extra_field="ignored"))
    assert isinstance(ev, RoundCompleted)
    assert ev.occurred_at == datetime(2026, 2, 10, 8, 0, 0, 123456, tzinfo=UTC)
    assert ev.prompt_cached_tool_outputs == 0 and ev.error is None


def test_encode_then_decode_round_trips() -> None:
    ev = RoundCompleted(
        event_id="e",
        occurred_at=datetime(2026, 1, 1, tzinfo=UTC),
        round_id="r",
        session_id="s",
        status="error",
        usage=TokenUsage(prompt_tokens=1, completion_tokens=2, total_tokens=3),
        error="x",
    )
    assert decode(encode(ev)) == ev


@pytest.mark.parametrize(
    ("raw", "field", "reason"),
    [
        (
            _raw(usage={"prompt_tokens": "10", "completion_tokens": 1, "total_tokens": 1}),
            "usage.prompt_tokens",
            "valid integer",
        ),
        (
            _raw(usage={"prompt_tokens": -1, "completion_tokens": 1, "total_tokens": 1}),
            "usage.prompt_tokens",
            "greater than or equal to 0",
        ),
        (
            _raw(usage={"prompt_tokens": 2**63, "completion_tokens": 1, "total_tokens": 1}),
            "usage.prompt_tokens",
            "less than or equal to",
        ),
        (_raw(prompt_cached_tool_outputs=1.5), "prompt_cached_tool_outputs", "valid integer"),
        (_raw(event_id="x" * 129), "event_id", "is 129 characters long, over the maximum of 128"),
        (_raw(event_id=""), "event_id", "at least 1 character"),
        (_raw(event_id=_DROP), "event_id", "is required"),
        (_raw(type="round.exploded"), "type", "unknown event type"),
        (_raw(type=["round.completed"]), "type", "unknown event type"),
        (_raw(type={"name": "round.completed"}), "type", "unknown event type"),
        (
            b'{"type": "round.completed", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
            "event",
            "nested too deeply",
        ),
        (_raw(type=_DROP), "type", "is required"),
        (_raw(v=2), "v", "newer than the supported version"),
        (_raw(v=2, type="brand.new"), "v", "newer than the supported version"),
        (_raw(v=0), "v", "greater than or equal to 1"),
        (_raw(occurred_at="2026-02-10T10:00:00"), "occurred_at", "RFC 3339"),
        (_raw(occurred_at="2026-02-30T10:00:00Z"), "occurred_at", "day value is outside"),
        (_raw(occurred_at="yesterday"), "occurred_at", "RFC 3339"),
        (_raw(occurred_at=1700000000), "occurred_at", "RFC 3339"),
        (_raw(occurred_at="0001-01-01T00:30:00+01:00"), "occurred_at", "out of range once converted to UTC"),
        (_raw(occurred_at="9999-12-31T23:30:00-01:00"), "occurred_at", "out of range once converted to UTC"),
        (_raw(status="fine"), "status", "'success'"),
        (_raw(session_id="a\u0000b"), "session_id", "NUL"),
        (_raw(round_id=None), "round_id", "valid string"),
        (b"\xff\xfe{}", "event", "not valid UTF-8 at byte 0"),
        (b"{not json", "event", "not valid JSON"),
        (b"[1, 2]", "event", "must be a JSON object"),
    ],
)
def test_bad_input_names_the_field_and_the_reason(raw: bytes, field: str, reason: str) -> None:
    with pytest.raises(ContractError) as info:
        decode(raw)
    assert info.value.field == field
    assert reason in info.value.reason
    assert field in str(info.value)


def test_shipped_json_schema_is_generated_from_the_models() -> None:
    assert SCHEMA_FILE.read_text() == render(), "run: python -m contract.schema > contract/event.schema.json"


@settings(max_examples=300, deadline=None)
@given(at=st.datetimes(timezones=st.timezones()))
def test_order_key_is_the_utc_isoformat_then_rank_then_event_id(at: datetime) -> None:
    raw = json.dumps(
        {"v": 1, "event_id": "e-1", "type": "sync.mismatch", "occurred_at": at.isoformat(), "reason": "r"}
    )
    try:
        ev = decode(raw.encode())
    except ContractError:
        return  # e.g. a year that UTC conversion pushes out of range, or a seconds-precision offset
    utc = at.astimezone(UTC)
    assert ev.order_key == f"{utc.isoformat(timespec='microseconds')}|1|e-1"


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
_FIELDS = [
    "v",
    "type",
    "event_id",
    "occurred_at",
    "round_id",
    "session_id",
    "status",
    "usage",
    "prompt_cached_tool_outputs",
    "error",
    "model",
    "message_count",
    "tool_call_id",
    "success",
    "forward_id",
    "status_code",
    "reason",
    "tokens_saved",
    "is_stream",
    "endpoint",
    "tool_name",
]


@settings(max_examples=400, deadline=None)
@given(
    changes=st.dictionaries(
        st.sampled_from(_FIELDS),
        _JSON
        | st.sampled_from(
            [
                "session.started",
                "round.completed",
                "sync.mismatch",
                "0001-01-01T00:00:00+01:00",
                "2026-01-01T00:00:00Z",
            ]
        ),
        max_size=4,
    )
)
def test_decode_answers_any_json_with_an_event_or_a_contract_error(changes: dict[str, object]) -> None:
    """Whatever a producer writes, decode() returns an event or raises ContractError: anything
    else would crash the worker that reads it (and every one that claims it after)."""
    try:
        event = decode(_raw(**changes))
    except ContractError as exc:
        assert exc.field and exc.reason
    else:
        assert not event.occurred_at.utcoffset()


@settings(max_examples=300, deadline=None)
@given(raw=st.binary(max_size=64) | st.builds(lambda v: json.dumps(v).encode(), _JSON))
def test_decode_answers_any_bytes_with_an_event_or_a_contract_error(raw: bytes) -> None:
    with contextlib.suppress(ContractError):
        decode(raw)
