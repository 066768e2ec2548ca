"""How a worker reaches its Redis: one server or a cluster (contract/connect.py), as bytes."""

from __future__ import annotations

from redis.connection import parse_url

from worker.ingest.stream import StreamClient
from worker.settings import Settings


def check_url(url: str) -> None:
    """Raises ValueError for a URL the worker cannot read entries through."""
    if parse_url(url).get("decode_responses"):  # type: ignore[no-untyped-call]  # the URL's query wins
        raise ValueError(
            "REDIS_URL: decode_responses is not supported: the worker reads entries as bytes "
            "(a payload need not be UTF-8 to be dead-lettered intact)"
        )


def open_stream(settings: Settings) -> StreamClient:
    """The worker's Redis side, connected; its start-up log line names the mode."""
    timeout = max(5.0, settings.block_ms / 1000 + 5)
    return StreamClient.connect(settings.redis_url, settings.keys, settings.group, settings.consumer, timeout)
