"""The clients' venv is made from the registry on first use; an unreachable registry fails the test
with what to do, never skips it (a skip would hide that the clients were never driven)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.otlp.installs import PINS, install, pins_digest

pytestmark = pytest.mark.acceptance


def test_an_unreachable_registry_fails_with_what_to_do(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PIP_CONFIG_FILE": os.devnull,  # none of this machine's indexes, caches or constraints
        "PIP_INDEX_URL": "http://127.0.0.1:9/simple",  # nothing listens on the discard port
        "PIP_NO_CACHE_DIR": "1",
    }
    with pytest.raises(pytest.fail.Exception) as failed:
        install(tmp_path / "venv", PINS, env)
    message = str(failed.value)
    assert "package registry must be reachable" in message
    assert "requirements.txt" in message and str(tmp_path / "venv") in message
    assert "pip said:" in message and "opentelemetry" in message.lower()


def test_a_changed_pin_reinstalls_and_the_same_pins_do_not(tmp_path: Path) -> None:
    same, changed = tmp_path / "same.txt", tmp_path / "changed.txt"
    same.write_bytes(PINS.read_bytes())
    changed.write_text(PINS.read_text().replace("openai==", "openai==0.", 1))
    assert pins_digest(same) == pins_digest(PINS)
    assert pins_digest(changed) != pins_digest(PINS)
