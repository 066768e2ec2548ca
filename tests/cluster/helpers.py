"""Publishing to sharded streams on one Redis or a cluster, as the producer routes events."""

from __future__ import annotations

from collections.abc import Iterable

from contract.codec import STREAM_FIELD, encode
from contract.connect import Client
from contract.events import Event
from contract.keys import Keys


def routing_id(ev: Event) -> str:
    return getattr(ev, "session_id", None) or getattr(ev, "forward_id", None) or ev.event_id


def publish_sharded(client: Client, keys: Keys, events: Iterable[Event], chunk: int = 500) -> int:
    """XADD each event to its shard, pipelined (on a cluster, one pipeline spanning slots: not
    atomic, which publishing does not need)."""
    n = 0
    pipe = client.pipeline(transaction=False)
    for ev in events:
        pipe.xadd(keys.stream_for(routing_id(ev)), {STREAM_FIELD: encode(ev)})
        n += 1
        if n % chunk == 0:
            pipe.execute()
    pipe.execute()
    return n
