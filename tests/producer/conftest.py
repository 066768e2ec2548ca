"""Helpers for the producer tests: settings on the test's own key prefix, a private redis-server on a
port of our choosing (to stop and start it), polling with deadlines, reading a stream back."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from contract import STREAM_FIELD, Event, decode
from producer import ProducerSettings, Publisher
from worker.dev.embedded import free_port


def wait_for(condition: Callable[[], Any], timeout: float = 10.0, interval: float = 0.01) -> Any:
    """Poll until ``condition()`` is truthy; fail the test at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


def read_stream(client: redis.Redis, stream: str) -> list[Event]:
    return [decode(fields[STREAM_FIELD.encode()]) for _, fields in client.xrange(stream)]


def quick_settings(**values: Any) -> ProducerSettings:
    """Test settings: short timeouts and backoff, so outages end fast."""
    defaults: dict[str, Any] = {
        "socket_timeout": 0.5,
        "connect_timeout": 0.5,
        "retry_initial": 0.05,
        "retry_max": 0.3,
    }
    return ProducerSettings(**{**defaults, **values})


@pytest.fixture
def stream(key_prefix: str) -> str:
    return f"{key_prefix}:events"


@pytest.fixture
def settings(redis_url: str, stream: str, tmp_path: Path) -> ProducerSettings:
    return quick_settings(redis_url=redis_url, stream=stream, spool_dir=tmp_path / "spool")


@pytest.fixture
def publisher(settings: ProducerSettings, redis_client: redis.Redis) -> Iterator[Publisher]:
    pub = Publisher(settings)
    try:
        yield pub
    finally:
        pub.close(5)


class RedisServer:
    """A private redis-server on a fixed port: start() and stop() at will."""

    def __init__(self, port: int, data_dir: Path) -> None:
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"
        self.data_dir = data_dir
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, durable: bool = False, extra: tuple[str, ...] = ()) -> None:
        """``durable``: append-only file fsynced before each reply, so a kill -9 loses nothing
        that was acknowledged (and the restarted server has it)."""
        persistence = (
            ["--appendonly", "yes", "--appendfsync", "always"] if durable else ["--appendonly", "no"]
        )
        self._process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--dir",
                str(self.data_dir),
                *persistence,
                *extra,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port)

        def answers() -> bool:
            with contextlib.suppress(redis.RedisError):
                return bool(client.ping())
            return False

        wait_for(answers, timeout=10)
        client.close()

    def stop(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """Not started: the test starts it when it wants Redis to come back."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not on PATH")
    data = tmp_path / "redis"
    data.mkdir()
    server = RedisServer(free_port(), data)
    try:
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def black_hole() -> Iterator[int]:
    """A port that accepts connections and never answers: a Redis that hangs."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield int(listener.getsockname()[1])
