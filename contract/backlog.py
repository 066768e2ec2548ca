"""A consumer group's backlog on its streams: the entries the workers have not finished with.

One reading for both sides, which may not import each other: the worker's status view
(``metrics-worker status``, /v1/pipeline; worker/status.py), its drain check and Prometheus
gauges (worker/ingest), and the OTLP receiver's admission bound (producer/otlp/publishing.py).
Read-only (XINFO GROUPS, XLEN; XINFO STREAM where Redis has no lag counter), on one Redis or a
Redis Cluster.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis

from contract.connect import Client, by_node
from contract.entries import as_text, parse_id


@dataclass(frozen=True)
class StreamBacklog:
    """One stream's backlog for one consumer group, as :func:`read_backlog` defines it."""

    stream: str
    length: int
    """XLEN: the entries kept, acknowledged ones included until trimmed (not the backlog)."""
    group: dict[str, Any] | None
    """The group's XINFO GROUPS entry; None when the group (or the stream) does not exist."""
    undelivered: int | None
    pending: int

    @property
    def backlog(self) -> int | None:
        return None if self.undelivered is None else self.undelivered + self.pending


def read_backlog(client: Client, streams: Sequence[str], group: str) -> list[StreamBacklog]:
    """The backlog of ``group`` on each of ``streams`` (placed as the client's mode wants:
    ``contract.connect.placed``), in their order. For each stream:

    - ``undelivered``: the entries not yet delivered to the group: its ``lag`` (XINFO GROUPS);
      every entry of the stream (XLEN) while the group does not exist (no worker created it yet);
      0 when the stream does not exist. Where Redis has no lag (Redis < 7, or it lost the count
      after deletions): 0 if the group was delivered the last entry added, else None (some, but
      Redis cannot say how many);
    - ``pending``: delivered and not yet acknowledged (the group's ``pending``); 0 without a group;
    - ``backlog``: ``undelivered + pending``, the entries the group has not finished with; None
      when ``undelivered`` is.

    One round trip per master holding them (XINFO GROUPS, XLEN), one more per stream without a
    lag (XINFO STREAM). Raises redis.ResponseError when Redis refuses a command (an ACL user
    without XINFO or XLEN), redis-py's connection errors when it does not answer."""
    found: dict[str, StreamBacklog] = {}
    for node, names in by_node(client, list(streams)).values():
        pipe = node.pipeline(transaction=False)
        for name in names:
            pipe.xinfo_groups(name)
            pipe.xlen(name)
        replies: list[Any] = pipe.execute(raise_on_error=False)
        for name, groups, length in zip(names, replies[::2], replies[1::2], strict=True):
            if isinstance(length, Exception):
                raise length
            if isinstance(groups, Exception):
                if isinstance(groups, redis.ResponseError) and length == 0:  # no such stream
                    found[name] = StreamBacklog(name, 0, None, 0, 0)
                    continue
                raise groups
            info = next((g for g in groups if as_text(g["name"]) == group), None)
            if info is None:
                found[name] = StreamBacklog(name, int(length), None, int(length), 0)
                continue
            lag = info.get("lag")
            undelivered = None if lag is None else int(lag)
            if undelivered is None:
                last: Any = node.xinfo_stream(name)["last-generated-id"]
                undelivered = 0 if parse_id(info["last-delivered-id"]) >= parse_id(last) else None
            found[name] = StreamBacklog(name, int(length), info, undelivered, int(info["pending"]))
    return [found[name] for name in streams]
