"""What the demo, the tests and the benchmarks share: a schema of their own per run, and waiting
until a run's stream is drained. Nothing in production imports this."""

from __future__ import annotations

import time
from urllib.parse import quote

import redis
from redis.exceptions import RedisClusterException

from contract.connect import Client
from contract.keys import Keys
from worker.ingest.stream import StreamClient


def with_search_path(url: str, schema: str) -> str:
    """The same database URL, with every connection's search_path set to ``schema`` (tests and
    benchmarks give each run its own schema; subprocesses inherit it through the URL)."""
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}options={quote(f'-csearch_path={schema}')}"


def wait_drained(client: Client, keys: Keys, group: str, timeout: float, interval: float = 0.1) -> None:
    """Block until the group has nothing undelivered or pending on any shard (also on Redis 6.2,
    which has no lag counter). For the demo and the drills; raises TimeoutError."""
    backlog = StreamClient(client, keys, group, "drain-observer").backlog
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if backlog() == (0, 0):
                return
        except (redis.RedisError, RedisClusterException):  # a server restarting: ask again
            pass
        time.sleep(interval)
    raise TimeoutError(f"{', '.join(keys.streams)} not drained by group {group} within {timeout:.0f} s")
