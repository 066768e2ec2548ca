"""Size limits: an oversized entry is dead-lettered with its size, unread; a long string with its length."""

from __future__ import annotations

import json

import pytest

from contract.fields import DEFAULT_MAX_EVENT_BYTES, MAX_ERROR_LENGTH, MAX_ID_LENGTH, MAX_NAME_LENGTH
from worker.ingest import triage
from worker.ingest.stream import Batch
from worker.ingest.triage import sort_entries
from worker.settings import WorkerSettings

BASE = {"v": 1, "event_id": "e", "type": "sync.mismatch", "occurred_at": "2026-02-10T10:00:00Z"}


def _letters(payload: bytes, **limits: int) -> list[str]:
    out = sort_entries(Batch("s", [(b"1-0", {b"event": payload})]), 5, **limits)
    return [reason for _entry, _deliveries, reason in out.letters]


def test_an_entry_over_the_limit_is_dead_lettered_with_its_size_without_being_parsed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def never(raw: bytes) -> None:
        raise AssertionError("an oversized entry was parsed")

    monkeypatch.setattr(triage, "decode", never)
    big = json.dumps({**BASE, "reason": "r", "padding": "x" * DEFAULT_MAX_EVENT_BYTES}).encode()
    assert _letters(big) == [
        f"too large: {len(big):,} bytes, over the limit of 1,048,576 (METRICS_MAX_EVENT_BYTES)"
    ]
    assert _letters(b"{" * 101, max_bytes=100) == [
        "too large: 101 bytes, over the limit of 100 (METRICS_MAX_EVENT_BYTES)"
    ]


def test_an_entry_at_the_limit_is_read() -> None:
    payload = json.dumps({**BASE, "reason": "r"}).encode()
    assert _letters(payload, max_bytes=len(payload)) == []


def test_the_limit_comes_from_the_environment_and_must_be_positive() -> None:
    assert WorkerSettings.from_env({"METRICS_MAX_EVENT_BYTES": "4096"}).max_event_bytes == 4096
    assert WorkerSettings.from_env({}).max_event_bytes == DEFAULT_MAX_EVENT_BYTES
    with pytest.raises(ValueError, match=r"^METRICS_MAX_EVENT_BYTES: must be at least 1, got 0"):
        WorkerSettings.from_env({"METRICS_MAX_EVENT_BYTES": "0"})
    # Built for a command that has the flag (not given), the error names it too.
    with pytest.raises(
        ValueError, match=r"METRICS_MAX_EVENT_BYTES \(--max-event-bytes\): must be at least 1"
    ):
        WorkerSettings.from_env({"METRICS_MAX_EVENT_BYTES": "0"}, max_event_bytes=None)


@pytest.mark.parametrize(
    ("event", "field", "limit"),
    [
        (
            {"type": "sync.mismatch", "event_id": "x" * (MAX_ID_LENGTH + 1), "reason": "r"},
            "event_id",
            MAX_ID_LENGTH,
        ),
        ({"type": "sync.mismatch", "reason": "é" * (MAX_NAME_LENGTH + 1)}, "reason", MAX_NAME_LENGTH),
        (
            {
                "type": "tool.completed",
                "tool_call_id": "t",
                "round_id": "r",
                "session_id": "s",
                "success": False,
                "error": "😀" * (MAX_ERROR_LENGTH + 1),
            },
            "error",
            MAX_ERROR_LENGTH,
        ),
    ],
)
def test_a_string_over_its_maximum_is_dead_lettered_with_its_length(
    event: dict[str, object], field: str, limit: int
) -> None:
    payload = json.dumps({**BASE, **event}, ensure_ascii=False).encode()
    [reason] = _letters(payload)
    assert reason.startswith(
        f"invalid event: {field}: is {limit + 1:,} characters long, over the maximum of {limit:,}"
    ), reason
