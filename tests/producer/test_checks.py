"""Unit: wrong arguments raise a ValueError that names the argument; nothing is enqueued."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from tests.producer.conftest import quick_settings
from tests.producer.helpers import SAMPLES, Capture

BAD: list[tuple[str, str, Any]] = [
    ("session_started", "session_id", 42),
    ("session_started", "session_id", ""),
    ("session_started", "session_id", "x" * 129),
    ("session_started", "model", "nul\x00"),
    ("session_message_count", "message_count", -1),
    ("session_message_count", "message_count", True),
    ("session_message_count", "message_count", 2**63),
    ("session_completed", "status", "done"),
    ("round_started", "round_id", None),
    ("round_completed", "status", "ok"),
    ("round_completed", "usage", {"prompt_tokens": 1}),
    ("round_completed", "usage", (1, "2")),
    ("round_completed", "usage", 12),
    ("round_completed", "prompt_cached_tool_outputs", 1.5),
    ("round_completed", "error", "e" * 16_385),
    ("round_compressed", "tokens_saved", "100"),
    ("tool_started", "tool_name", b"read_file"),
    ("tool_completed", "success", 1),
    ("forward_started", "is_stream", "yes"),
    ("forward_completed", "status_code", 99),
    ("forward_completed", "status", "ok"),
    ("sync_mismatch", "reason", "r" * 257),
    # Found in review: unhashable choices raised TypeError; unpaired surrogates (os.fsdecode of
    # undecodable bytes) passed, and the sender could only drop the event.
    ("session_completed", "status", ["completed"]),
    ("forward_completed", "status", {"success": 1}),
    ("session_started", "session_id", "s-\udce9"),
    ("tool_started", "tool_name", "grep-\udcff"),
    ("round_completed", "error", "failed on report-\udce9.txt"),
]


@pytest.mark.parametrize(("method", "argument", "value"), BAD)
def test_wrong_argument_is_a_value_error_naming_it(
    tmp_path: Path, method: str, argument: str, value: Any
) -> None:
    capture = Capture(quick_settings(spool_dir=tmp_path))
    with pytest.raises(ValueError, match=rf"^{argument}(\.\w+)?: must be "):
        getattr(capture, method)(**{**SAMPLES[method], argument: value})
    assert capture.items == []


def test_given_metadata_is_checked(tmp_path: Path) -> None:
    capture = Capture(quick_settings(spool_dir=tmp_path))
    with pytest.raises(ValueError, match=r"^occurred_at: must be a timezone-aware datetime"):
        capture.sync_mismatch("r", occurred_at=datetime(2026, 1, 1))
    with pytest.raises(ValueError, match=r"^event_id: must be"):
        capture.sync_mismatch("r", event_id="")
    with pytest.raises(ValueError, match=r"^event: must be a contract event"):
        capture.publish({"type": "sync.mismatch"})
    with pytest.raises(ValueError, match=r"^occurred_at: must be a datetime that exists in UTC"):
        capture.sync_mismatch(
            "r", occurred_at=datetime(9999, 12, 31, 23, tzinfo=timezone(timedelta(hours=-5)))
        )
    for since in ("abc", float("nan"), float("inf"), True, [1], 10**400):
        with pytest.raises(ValueError, match=r"^since: must be a finite number of unix seconds"):
            capture.session_awaiting("s", since=since)
    assert capture.items == []


def test_error_text_escapes_what_utf8_cannot_carry() -> None:
    """An exception naming a file that os.fsdecode() decoded with surrogates still reports."""
    import os

    from producer.lifecycle import error_text

    name = os.fsdecode(b"/x/report-\xe9.txt")
    text = error_text(RuntimeError(f"cannot read {name}"))
    assert text == "RuntimeError: cannot read /x/report-\\udce9.txt"
    text.encode("utf-8")


def test_hints_of_a_session_never_written_are_not_kept_for_removal() -> None:
    """While Redis is away every session opens and closes in memory only: nothing to remove later."""
    from contract.keys import Keys
    from producer.hints import HintWriter

    hints = HintWriter(Keys(), interval=5, ttl=30)
    for i in range(1000):
        hints.opened(f"s{i}")
        hints.closed(f"s{i}")
    assert len(hints._gone) == 0


def test_lifecycle_helpers_check_what_they_are_given(tmp_path: Path) -> None:
    capture = Capture(quick_settings(spool_dir=tmp_path))
    with pytest.raises(ValueError, match=r"^model: must be"):
        capture.session("")
    with capture.session("m") as session, session.round() as round_:
        with pytest.raises(ValueError, match=r"^usage.prompt_tokens: must be"):
            round_.usage(-1, 0)
        with pytest.raises(ValueError, match=r"^tool_name: must be"):
            round_.tool("")
    with pytest.raises(ValueError, match=r"^status_code: must be"):
        capture.forward("/e", "m").complete(600)
