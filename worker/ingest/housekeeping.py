"""Housekeeping of a group's streams, every half minute on each worker.

Two chores, both safe next to live readers: trimming entries every group has acknowledged
(never a blind MAXLEN) and removing consumers that left and hold nothing (never one that does).
And one warning: entries on the base stream that no worker reads (K > 1 shards, and a producer
that ignored the routing rule), with their count, for as long as there are any.
"""

from __future__ import annotations

import logging

from contract.entries import as_text, format_id, next_id, parse_id
from worker.ingest.stream import StreamClient
from worker.status import unrouted_count, unrouted_warning

log = logging.getLogger(__name__)

# Removes a consumer only if it still holds nothing: checking and deleting in one atomic step, so
# a consumer that reads in between cannot lose its pending entries (DELCONSUMER drops them).
_DELETE_IF_IDLE = """
local pending = redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2])
if #pending == 0 then
  return redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
end
return -1
"""


def trim_acknowledged(group: StreamClient) -> int:
    """XTRIM MINID below the oldest entry any group still needs: its oldest pending entry, or
    what it has not been delivered yet. Never a blind MAXLEN, which would drop unprocessed entries."""
    client, removed = group.client, 0
    for stream in group.streams:
        floor: tuple[int, int] | None = None
        for info in client.xinfo_groups(stream):
            need = next_id(parse_id(info["last-delivered-id"]))
            if int(info["pending"]):
                summary = client.xpending(stream, info["name"])
                if summary["min"] is not None:
                    need = min(need, parse_id(summary["min"]))
            floor = need if floor is None else min(floor, need)
        if floor is not None:
            removed += int(client.xtrim(stream, minid=format_id(floor), approximate=False))
    return removed


def warn_unrouted(group: StreamClient) -> int | None:
    """A WARNING when the base stream holds entries no worker reads (worker/status.py, unrouted):
    how many, why and what to do. Their count; 0 with one stream, or none there."""
    unrouted = unrouted_count(group.client, group.keys, group.group)
    if unrouted != 0:
        log.warning("%s", unrouted_warning(unrouted, group.keys))
    return unrouted


def remove_idle_consumers(group: StreamClient, idle_ms: int) -> list[str]:
    """Consumers of the group idle for ``idle_ms`` with nothing pending, removed (not ourselves)."""
    client, removed = group.client, []
    delete_if_idle = client.register_script(_DELETE_IF_IDLE)
    for stream in group.streams:
        for info in client.xinfo_consumers(stream, group.group):
            name = as_text(info["name"])
            if name == group.consumer or int(info["pending"]) or int(info["idle"]) < idle_ms:
                continue
            if delete_if_idle(keys=[stream], args=[group.group, name]) != -1:
                removed.append(name)
    if removed:
        log.info("removed idle consumers with nothing pending: %s", ", ".join(removed))
    return removed
