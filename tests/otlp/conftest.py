"""A private redis-server to stop and start (the producer tests' own), for the receiver's outage tests."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.producer.conftest import RedisServer
from worker.dev.embedded import free_port


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """Not started: the test starts it."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not on PATH")
    data = tmp_path / "redis"
    data.mkdir()
    server = RedisServer(free_port(), data)
    try:
        yield server
    finally:
        server.stop()
