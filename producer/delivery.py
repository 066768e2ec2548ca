"""A batch and its way into Redis: what every batch is (spooled or not), the script that adds it
exactly once, the connection the sender uses, and the backoff between failed attempts.

Exactly once per batch: every batch carries (producer token, sequence) and is written by one Lua
script that adds its events to the stream and records the sequence in a marker key, in one atomic
step; a batch whose sequence is not above the marker is skipped. A batch that timed out and is
retried from the spool (it may have been applied late), or replayed again after a SIGKILL between
the send and the spool's commit, is therefore not added twice as long as the marker lives
(``dedup_ttl``, 24 h by default).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any, NamedTuple

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from contract.codec import STREAM_FIELD
from contract.keys import Keys
from producer.settings import ProducerSettings

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


def add_batches(client: redis.Redis, batches: list[Batch], dedup_ttl: int) -> tuple[int, int]:
    """Send batches in one round trip (one script call per token and stream); returns the events
    (added, skipped as already there). Raises redis.RedisError / OSError when the round trip
    failed or a call was refused (a wrong key type, out of memory): the caller keeps all of them
    for a retry, and the ones that got through are skipped then."""
    calls: dict[tuple[str, str], list[Any]] = {}
    for batch in batches:
        args = calls.setdefault((batch.token, batch.stream), [dedup_ttl])
        args += (batch.seq, len(batch.events), b"\n".join(batch.events))
    pipe = client.pipeline(transaction=False)
    for (token, stream), args in calls.items():
        pipe.execute_command(  # type: ignore[no-untyped-call]
            "EVAL", ADD_BATCHES, 2, stream, Keys.producer_marker(stream, token), *args
        )
    results = pipe.execute(raise_on_error=False)
    for result in results:
        if isinstance(result, Exception):
            raise result
    return sum(int(r[0]) for r in results), sum(int(r[1]) for r in results)


class Backoff:
    """When to try Redis again: the delay doubles from ``initial`` to ``maximum`` with each
    failure, jittered to 50-100 %, until :meth:`reset`. Pure: the caller passes ``now``."""

    def __init__(
        self, initial: float, maximum: float, jitter: Callable[[], float] = lambda: random.uniform(0.5, 1.0)
    ) -> None:
        self.initial = initial
        self.maximum = maximum
        self._jitter = jitter
        self._delay = initial

    def failed(self, now: float) -> float:
        """The time of the next attempt after a failure at ``now``."""
        at = now + self._delay * self._jitter()
        self._delay = min(self._delay * 2, self.maximum)
        return at

    def reset(self) -> None:
        self._delay = self.initial


def connect(settings: ProducerSettings) -> redis.Redis:
    # No client-side retries: a retried script call after a timeout would be sent twice, and the
    # sender has its own recovery (the spool) that keeps order.
    return redis.Redis.from_url(
        settings.redis_url,
        socket_timeout=settings.socket_timeout,
        socket_connect_timeout=settings.connect_timeout,
        retry=Retry(NoBackoff(), 0),
        health_check_interval=0,
    )


def safe_url(url: str) -> str:
    """The URL without its password, for logs."""
    if "@" not in url:
        return url
    scheme, _, rest = url.partition("://")
    return f"{scheme}://***@{rest.rpartition('@')[2]}"
