"""Helpers for tests that go through the stream."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from typing import Any

import redis

from contract.codec import STREAM_FIELD, encode
from contract.events import Event
from worker.ingest.consumer import Worker
from worker.settings import WorkerSettings


def publish(client: redis.Redis, stream: str, events: Iterable[Event], chunk: int = 1000) -> int:
    n = 0
    pipe = client.pipeline(transaction=False)
    for ev in events:
        pipe.xadd(stream, {STREAM_FIELD: encode(ev)})
        n += 1
        if n % chunk == 0:
            pipe.execute()
    pipe.execute()
    return n


def settings(db_url: str, redis_url: str, key_prefix: str, **overrides: Any) -> WorkerSettings:
    base: dict[str, Any] = {
        "database_url": db_url,
        "redis_url": redis_url,
        "stream": f"{key_prefix}:events",
        "group": "workers",
        "block_ms": 100,
        "claim_idle_ms": 1000,
        "trim_every_s": 3600.0,
    }
    base.update(overrides)
    return WorkerSettings(**base)


def drain(s: WorkerSettings, **kw: Any) -> Worker:
    worker = Worker(s, handle_signals=False)
    assert worker.run(burst=True) == 0
    return worker


def worker_env(s: WorkerSettings) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DATABASE_URL=s.database_url,
        REDIS_URL=s.redis_url,
        METRICS_STREAM=s.stream,
        METRICS_GROUP=s.group,
        METRICS_SHARDS=str(s.shards),
    )
    return env


def spawn_worker(s: WorkerSettings, *args: str) -> subprocess.Popen[bytes]:
    """``metrics-worker run`` as a subprocess; its log goes to a temporary file (see ``log_of``)."""
    with tempfile.NamedTemporaryFile(prefix="worker-", suffix=".log", delete=False) as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "worker.cli", "run", *args],
            env=worker_env(s),
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    proc.log_path = log.name  # type: ignore[attr-defined]
    return proc


def wait_consuming(client: Any, stream: str, group: str, *consumers: str, timeout: float = 60.0) -> None:
    """Until each of ``consumers`` is in ``group`` on ``stream``: it has read from the stream, so it
    runs its loop with its SIGTERM handler installed. A signal before that would meet Python's
    default action and end the worker at once (exit -15), which is what a test must not mistake
    for the worker's answer to SIGTERM. ``client``: one Redis or a cluster."""

    def registered() -> bool:
        try:
            names = {c["name"] for c in client.xinfo_consumers(stream, group)}
        except redis.ResponseError:  # no group yet
            return False
        return all(c in names or c.encode() in names for c in consumers)

    wait_for(registered, timeout)


def log_of(proc: subprocess.Popen[bytes], tail: int = 3000) -> str:
    with open(proc.log_path, "rb") as f:  # type: ignore[attr-defined]
        return f.read().decode("utf-8", "replace")[-tail:]


def wait_for(condition: Callable[[], Any], timeout: float = 30.0, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s: {condition}")
