"""What the demo, the tests and the benchmarks share: a schema of their own per run, and waiting
until a run's stream is drained. Nothing in production imports this."""

from __future__ import annotations

import time
from urllib.parse import quote

from contract.connect import Client
from contract.keys import Keys
from worker.status import UNAVAILABLE, read_status


def with_search_path(url: str, schema: str) -> str:
    """The same database URL, with every connection's search_path set to ``schema`` (tests and
    benchmarks give each run its own schema; subprocesses inherit it through the URL)."""
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}options={quote(f'-csearch_path={schema}')}"


def wait_drained(client: Client, keys: Keys, group: str, timeout: float, interval: float = 0.1) -> None:
    """Block until the group has nothing undelivered or pending on any shard (also on Redis 6.2,
    which has no lag counter), as worker/status.py reads it. For the demo and the drills; raises
    TimeoutError."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            status = read_status(client, keys, group, latest=0)
            if status.undelivered == 0 and status.pending == 0:
                return
        except UNAVAILABLE:  # a server restarting: ask again
            pass
        time.sleep(interval)
    raise TimeoutError(f"{', '.join(keys.streams)} not drained by group {group} within {timeout:.0f} s")
