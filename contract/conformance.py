"""The conformance file: worked examples of the routing rule and the key names, for any language.

``python -m contract.conformance > contract/conformance.json`` regenerates the shipped file from
the rules of contract/routing.py, contract/keys.py and contract/liveness.py; a test fails when the
two differ, and checks the file against the producer, the worker and a second implementation
written from the documented rules alone. ``examples/node/producer.js --check-conformance`` is a
producer in another language testing itself against it.
"""

from __future__ import annotations

import binascii
import json
import zlib
from pathlib import Path
from typing import Any

from contract.keys import DEFAULT_STREAM, Keys, cluster_tag
from contract.liveness import HEARTBEAT_INTERVAL_S, HEARTBEAT_TTL_S
from contract.routing import ROUTING_FIELDS, routing_id, shard_of

CONFORMANCE_FILE = Path(__file__).with_name("conformance.json")

#: Routing ids are checked for K = 1..ROUTED_SHARDS, cluster tags and key names for K up to TAGGED_SHARDS.
ROUTED_SHARDS = 16
TAGGED_SHARDS = 64

#: Ids that trip a careless implementation: non-ASCII in 2, 3 and 4 UTF-8 bytes, one text in two
#: Unicode normal forms, braces, quotes, the longest id; with the numbered ones, CRC values with
#: the top bit set (signed arithmetic) and every shard of every K are covered.
SPECIAL_IDS: tuple[str, ...] = (
    "s-from-shell",
    "0190f3c2-7a4e-7cc1-9a51-1c2f0e4b5d6a",
    "a",
    "0",
    "with space",
    'quote"and\\backslash',
    "{0}",
    "{1.3}",
    "metrics:events:{2}",
    "sess\u00e3o-1",  # NFC: "ã" is one code point
    "sessa\u0303o-1",  # NFD: "a" + combining tilde, the same text to a reader
    "\u00fcber",
    "u\u0308ber",
    "\u03a9\u03bc\u03ad\u03b3\u03b1",
    "\u062c\u0644\u0633\u0629",
    "\u4f1a\u8bdd-42",
    "\u30bb\u30c3\u30b7\u30e7\u30f3",
    "\U0001f680-session",  # 4 bytes in UTF-8, a surrogate pair in UTF-16
    "dev \U0001f469\u200d\U0001f4bb",  # a ZWJ sequence
    "\u00a0nbsp",
    "x" * 128,
    "\u00e9" * 128,  # 128 characters, 256 bytes
)
NUMBERED_IDS: tuple[str, ...] = tuple(f"session-{n:04d}" for n in range(64))

_UUID = "0190f3c2-7a4e-7cc1-9a51-1c2f0e4b5d6a"
_USAGE = {"prompt_tokens": 1200, "completion_tokens": 300, "total_tokens": 1500}
_ROUND = {"round_id": "r-1", "session_id": "s-from-shell"}
_USAGE_PARTS = {**_USAGE, "cache_read_tokens": 1024, "cache_write_tokens": 0, "reasoning_tokens": 64}
# A forward linked to its session and round still routes by its forward_id.
_FORWARD = {
    "forward_id": _UUID,
    "endpoint": "/v1/chat/completions",
    "model": "gpt-4o",
    "is_stream": False,
    "provider": "openai",
    "session_id": "s-from-shell",
    "round_id": "r-1",
}
_TOOL = {"tool_call_id": "t-1", "round_id": "r-1", "session_id": "\u4f1a\u8bdd-42"}
_EXAMPLES: tuple[tuple[str, dict[str, Any]], ...] = (
    ("session.started", {"session_id": "sess\u00e3o-1", "model": "gpt-4o", "user_id": "user-7"}),
    ("session.message_count", {"session_id": "sess\u00e3o-1", "message_count": 2}),
    ("session.completed", {"session_id": "sess\u00e3o-1", "status": "completed"}),
    ("round.started", {**_ROUND, "model": "gpt-4o", "provider": "openai"}),
    ("round.completed", {**_ROUND, "status": "success", "usage": _USAGE, "prompt_cached_tool_outputs": 0}),
    ("round.compressed", {**_ROUND, "tokens_saved": 800}),
    ("tool.started", {**_TOOL, "tool_name": "grep"}),
    ("tool.completed", {**_TOOL, "success": True, "error": None}),
    ("forward.started", _FORWARD),
    (
        "forward.completed",
        {
            "forward_id": _UUID,
            "status": "success",
            "status_code": 200,
            "usage": _USAGE_PARTS,
            "time_to_first_token_ms": 420,
        },
    ),
    ("sync.mismatch", {"reason": "\U0001f680-session"}),
)
#: One event of each type (valid against contract/event.schema.json), to check the routing field.
EXAMPLE_EVENTS: tuple[dict[str, Any], ...] = tuple(
    {"v": 1, "event_id": f"{_UUID[:-2]}{n:02x}", "type": t, "occurred_at": "2026-02-10T10:00:00.000000Z", **f}
    for n, (t, f) in enumerate(_EXAMPLES)
)

#: Deployments whose key names are listed in full, in both modes (the tags of every K up to
#: TAGGED_SHARDS are listed apart): the default stream, and a non-ASCII stream name.
_STREAMS: tuple[tuple[str, tuple[int, ...]], ...] = (
    (DEFAULT_STREAM, (1, 2, 3, 4, 5, 6, 8, 16, TAGGED_SHARDS)),
    ("m\u00e9tricas:eventos", (1, 2, 5)),
)


def build() -> dict[str, Any]:
    """The conformance document."""
    deployments = []
    for stream, counts in _STREAMS:
        for shards in counts:
            for cluster in (False, True):
                keys = Keys(stream=stream, shards=shards, cluster=cluster)
                deployments.append(
                    {
                        "stream": stream,
                        "shards": shards,
                        "cluster": cluster,
                        "streams": keys.streams,
                        "dead_letters": [keys.dead_letters_for(s) for s in keys.streams],
                        "heartbeats": keys.active_sessions,
                        "awaiting": keys.awaiting_sessions,
                    }
                )
    return {
        "about": (
            "Worked examples of the wire contract's routing and key names (README: The wire contract; "
            "contract/routing.py, contract/liveness.py). routing[].shard[K-1] is the shard index of the "
            "id for K shards; with K = 1 every event goes to the stream itself. Generated by "
            "contract/conformance.py: do not edit."
        ),
        "check_values": {
            "crc32": {"input": "123456789", "value": zlib.crc32(b"123456789")},
            "crc16_xmodem": {"input": "123456789", "value": binascii.crc_hqx(b"123456789", 0)},
        },
        "routing_fields": ROUTING_FIELDS,
        "routing": [
            {
                "id": rid,
                "utf8": rid.encode("utf-8").hex(),
                "crc32": zlib.crc32(rid.encode("utf-8")),
                "shard": [shard_of(rid, k) for k in range(1, ROUTED_SHARDS + 1)],
            }
            for rid in (*SPECIAL_IDS, *NUMBERED_IDS)
        ],
        "events": [{"event": event, "routing_id": routing_id(event)} for event in EXAMPLE_EVENTS],
        "cluster_tags": {str(k): [cluster_tag(i, k) for i in range(k)] for k in range(2, TAGGED_SHARDS + 1)},
        "liveness": {
            "heartbeat_interval_s": HEARTBEAT_INTERVAL_S,
            "heartbeat_ttl_s": HEARTBEAT_TTL_S,
            "member": "session_id",
            "heartbeat_score": "unix seconds until which the session is alive (now + ttl)",
            "awaiting_score": "unix seconds when the session began waiting for its user",
        },
        "deployments": deployments,
    }


def render(document: dict[str, Any] | None = None) -> str:
    """The file's text: one member per line at the top, each list item or object entry below it
    on one line (so a diff shows which id or deployment changed), ASCII only (``\\u`` escapes:
    no editor can normalise an id's Unicode)."""
    doc = build() if document is None else document
    lines = ["{"]
    for n, (name, value) in enumerate(doc.items()):
        comma = "," if n < len(doc) - 1 else ""
        if isinstance(value, list):
            items = [json.dumps(item) for item in value]
            lines.append(f"  {json.dumps(name)}: [")
            lines += [f"    {item}{',' if i < len(items) - 1 else ''}" for i, item in enumerate(items)]
            lines.append(f"  ]{comma}")
        elif isinstance(value, dict):
            entries = [f"{json.dumps(k)}: {json.dumps(v)}" for k, v in value.items()]
            lines.append(f"  {json.dumps(name)}: {{")
            lines += [f"    {entry}{',' if i < len(entries) - 1 else ''}" for i, entry in enumerate(entries)]
            lines.append(f"  }}{comma}")
        else:
            lines.append(f"  {json.dumps(name)}: {json.dumps(value)}{comma}")
    lines.append("}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(render(), end="")
