"""Which stream an event goes to: the shard rule every producer follows, in any language.

With ``METRICS_SHARDS=K`` the workers read K shard streams and nothing else, so a producer must
write each event to one of them (an event on the base stream is never read when K > 1). The rule,
exactly as the Python producer applies it (``contract.keys.Keys.stream_for``):

1. **The routing id** is one field of the event, by its type (:data:`ROUTING_FIELDS`):
   ``session_id`` for ``session.*``, ``round.*`` and ``tool.*``; ``forward_id`` for
   ``forward.*``; ``reason`` for ``sync.mismatch`` (its counter row is keyed by reason, so one
   reason's events meet on one shard).
2. **K = 1** (the default): every event goes to the stream itself, ``metrics:events``.
3. **K > 1**: shard = CRC-32 of the routing id's UTF-8 bytes, as an unsigned 32-bit integer,
   modulo K. The CRC-32 is zlib's (IEEE 802.3, "CRC-32/ISO-HDLC": reflected polynomial
   0xEDB88320, initial value and final XOR 0xFFFFFFFF; CRC-32 of ``123456789`` is 0xCBF43926).
   The bytes are the id exactly as sent in the JSON, with no Unicode normalisation (``é`` as one
   code point and as ``e`` + U+0301 are different ids and may route apart). Beware signed 32-bit
   arithmetic (JavaScript's ``|``, Java's ``int``): take the value unsigned before the modulus.
4. **Shard i's stream** is ``<stream>:{<tag>}``: on one Redis the tag is ``i``
   (``metrics:events:{0}`` ... ``{K-1}``); on a Redis Cluster it is ``cluster_tag(i, K)``
   (``contract.keys.cluster_tag``): the first of ``i``, ``i.1``, ``i.2``, ... whose slot s lies in
   the middle half of the i-th of K equal slices of the 16384 slots, in integers
   ``4096 * (4i + 1) <= K * s < 4096 * (4i + 3)`` (the slot is CRC16/XMODEM of the tag's ASCII
   bytes modulo 16384, as Redis Cluster hashes a key's ``{tag}``; CRC16 of ``123456789`` is
   0x31C3). So K shards spread evenly over masters holding equal slot ranges. A producer asks any
   node ``INFO cluster`` (``cluster_enabled:1`` on a cluster) to know which names to use.

One session's events on one shard let workers apply them without waiting on one another's row
locks; an event on another of the K shards is still read and applied correctly (every worker reads
every shard, and the merge does not depend on order), but a stream outside the K is never read.
``contract/conformance.json`` (written by ``contract/conformance.py``) lists routing ids with their
shard for K = 1..16, the cluster tags for K = 1..64 and the key names, for any producer to test
itself against.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from typing import Any

#: Event type -> the field whose value picks the shard.
ROUTING_FIELDS: dict[str, str] = {
    "session.started": "session_id",
    "session.message_count": "session_id",
    "session.completed": "session_id",
    "round.started": "session_id",
    "round.completed": "session_id",
    "round.compressed": "session_id",
    "tool.started": "session_id",
    "tool.completed": "session_id",
    "forward.started": "forward_id",
    "forward.completed": "forward_id",
    "sync.mismatch": "reason",
}


def routing_id(event: Mapping[str, Any] | Any) -> str:
    """The routing id of an event, given as its JSON object (a mapping) or a contract model.
    Raises KeyError for a type the contract does not have."""
    if isinstance(event, Mapping):
        return str(event[ROUTING_FIELDS[event["type"]]])
    return str(getattr(event, ROUTING_FIELDS[event.type]))


def shard_of(routing_id: str, shards: int) -> int:
    """The index of the shard, in ``range(shards)``, that events with ``routing_id`` go to."""
    if shards < 1:
        raise ValueError(f"shards: must be at least 1, got {shards}")
    return zlib.crc32(routing_id.encode("utf-8")) % shards
