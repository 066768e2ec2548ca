"""How a worker reaches its servers: its Redis (one server or a cluster, contract/connect.py, as
bytes) and its PostgreSQL connection options."""

from __future__ import annotations

from psycopg.conninfo import conninfo_to_dict
from redis.connection import parse_url

from worker.ingest.stream import StreamClient
from worker.settings import WorkerSettings


def check_url(url: str) -> None:
    """Raises ValueError for a URL the worker cannot read entries through."""
    if parse_url(url).get("decode_responses"):  # type: ignore[no-untyped-call]  # the URL's query wins
        raise ValueError(
            "REDIS_URL: decode_responses is not supported: the worker reads entries as bytes "
            "(a payload need not be UTF-8 to be dead-lettered intact)"
        )


def open_stream(settings: WorkerSettings) -> StreamClient:
    """The worker's Redis side, connected; its start-up log line names the mode."""
    timeout = max(5.0, settings.block_ms / 1000 + 5)
    return StreamClient.connect(settings.redis_url, settings.keys, settings.group, settings.consumer, timeout)


#: The longest a batch waits for a row lock. Workers hold theirs for milliseconds; past this
#: something else holds one (a session in an editor, a stuck job), and the batch is retried with
#: backoff instead, which also lets SIGTERM end the worker within seconds.
LOCK_TIMEOUT = "3s"


def with_lock_timeout(database_url: str) -> str:
    """The URL's own ``options`` (a search_path, say) plus the worker's lock_timeout."""
    options = conninfo_to_dict(database_url).get("options") or ""
    return f"{options} -c lock_timeout={LOCK_TIMEOUT}".strip()
