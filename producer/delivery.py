"""A batch's way into Redis, exactly once: what every batch is (spooled or not), the script that
adds it, the connection the sender uses (its backoff between failed attempts: contract/backoff.py).

Exactly once per batch: every batch carries (producer token, sequence) and is written by one Lua
script that adds its events to the stream and records the sequence in a marker key, in one atomic
step; a batch whose sequence is not above the marker is skipped. A batch that timed out and is
retried from the spool (it may have been applied late), or replayed again after a SIGKILL between
the send and the spool's commit, is therefore not added twice as long as the marker lives
(``dedup_ttl``, 24 h by default).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import redis
from redis.backoff import NoBackoff
from redis.exceptions import RedisClusterException
from redis.retry import Retry

from contract.codec import STREAM_FIELD
from contract.connect import Client, by_node, is_cluster, placed, refresh, safe_url
from contract.connect import connect as connect_redis
from contract.keys import Keys
from producer.settings import ProducerSettings

__all__ = ["SEND_ERRORS", "Batch", "NotReplicated", "add_batches", "connect", "safe_url"]

# KEYS[1] stream, KEYS[2] the marker of (producer token, stream); ARGV[1] marker ttl (s), then
# per batch: seq, event count, the events joined by newlines (compact JSON has no raw newline;
# one argument per batch instead of one per event halves the client's packing work).
# Returns {added, skipped}.
ADD_BATCHES = f"""
local last = tonumber(redis.call('GET', KEYS[2]) or '0')
local added, skipped = 0, 0
for i = 2, #ARGV, 3 do
  local seq, n = tonumber(ARGV[i]), tonumber(ARGV[i + 1])
  if seq > last then
    for event in string.gmatch(ARGV[i + 2], '[^\\n]+') do
      redis.call('XADD', KEYS[1], '*', '{STREAM_FIELD}', event)
    end
    last = seq
    added = added + n
  else
    skipped = skipped + n
  end
end
redis.call('SET', KEYS[2], last, 'EX', ARGV[1])
return {{added, skipped}}
"""


class Batch(NamedTuple):
    """One batch for one stream: sent, spooled and replayed with the same (token, seq), so a
    retry is applied once."""

    token: str
    seq: int
    stream: str
    events: list[bytes]


class NotReplicated(redis.RedisError):
    """WAIT did not confirm the batches on enough replicas in time: they stay in the spool."""


#: What a send can fail with: the server, the network, or a cluster that cannot be mapped now.
SEND_ERRORS: tuple[type[Exception], ...] = (redis.RedisError, OSError, RedisClusterException)


def add_batches(
    client: Client, batches: list[Batch], dedup_ttl: int, keys: Keys, wait: tuple[int, int] = (0, 0)
) -> tuple[int, int]:
    """Send batches, one script call per token and stream, in one round trip per master (the
    script's two keys share the stream's slot); returns the events (added, skipped as already
    there). On a cluster, streams go by the shard names that spread over masters (a spooled
    batch keeps the name it was encoded with). ``wait`` = (replicas, timeout ms): after the calls,
    WAIT until that many replicas have them. Raises SEND_ERRORS when a round trip failed, a call
    was refused (a wrong key type, out of memory), or WAIT fell short (NotReplicated): the caller
    keeps all of them for a retry, and the ones that got through are skipped then."""
    names = dict(zip(keys.streams, placed(keys, client).streams, strict=True))
    calls: dict[tuple[str, str], list[Any]] = {}
    for batch in batches:
        args = calls.setdefault((batch.token, names.get(batch.stream, batch.stream)), [dedup_ttl])
        args += (batch.seq, len(batch.events), b"\n".join(batch.events))
    replicas, timeout_ms = wait
    added = skipped = 0
    for name, (node, streams) in by_node(client, list(dict.fromkeys(s for _, s in calls))).items():
        pipe = node.pipeline(transaction=False)
        for (token, stream), args in calls.items():
            if stream in streams:
                pipe.execute_command(  # type: ignore[no-untyped-call]
                    "EVAL", ADD_BATCHES, 2, stream, Keys.producer_marker(stream, token), *args
                )
        if replicas:
            pipe.execute_command("WAIT", replicas, timeout_ms)  # type: ignore[no-untyped-call]
        results = pipe.execute(raise_on_error=False)
        for result in results:
            if isinstance(result, Exception):
                raise result
        if replicas:
            acked = int(results.pop())
            if acked < replicas:
                where = name or "Redis"
                raise NotReplicated(f"WAIT: {acked} of {replicas} replica(s) of {where} in {timeout_ms} ms")
        added += sum(int(r[0]) for r in results)
        skipped += sum(int(r[1]) for r in results)
    return added, skipped


def connect(settings: ProducerSettings) -> Client:
    """One Redis or a Redis Cluster, whichever ``redis_url`` names (contract/connect.py). No
    client-side retries: a retried script call after a timeout would be sent twice, and the
    sender has its own recovery (the spool) that keeps order. Raises SEND_ERRORS when away."""
    return connect_redis(
        settings.redis_url,
        socket_timeout=settings.socket_timeout,
        socket_connect_timeout=settings.connect_timeout,
        retry=Retry(NoBackoff(), 0),
        health_check_interval=0,
    )


def check_reachable(settings: ProducerSettings, client: Client | None) -> None:
    """Raises one of SEND_ERRORS unless Redis answers: the node ``REDIS_URL`` names (a ping), or
    on a cluster the slot map again, from any node that answers, then every master."""
    if client is None or not is_cluster(client):
        connect(settings).close()
        return
    refresh(client)
    for node in client.get_primaries():  # type: ignore[union-attr]
        client.get_redis_connection(node).ping()  # type: ignore[union-attr]
