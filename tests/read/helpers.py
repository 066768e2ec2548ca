"""Helpers shared by the read side's tests: plain functions, no fixtures."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported for the type only: the module itself warns on import
    from fastapi.testclient import TestClient


def v1_paths(client: TestClient) -> list[str]:
    """Every /v1 route the app documents, with a session that exists for the detail."""
    paths = [p for p in client.get("/openapi.json").json()["paths"] if p.startswith("/v1/")]
    assert len(paths) >= 9
    return [p.replace("{session_id}", "s010") for p in paths]


def half_past_this_hour(room: timedelta = timedelta(minutes=2)) -> datetime:
    """Half past the current UTC hour, for rows that a read of "the last N hours" by the clock
    (the CLI, the API) finds where the test expects them. When less than ``room`` is left of the
    hour, waits for the next one first: a suite that crossed the hour between writing the rows and
    reading them saw them an hour older than it counted."""
    now = datetime.now(UTC)
    left = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1) - now
    if left < room:
        time.sleep(left.total_seconds() + 0.5)
        now = datetime.now(UTC)
    return now.replace(minute=30, second=0, microsecond=0)
