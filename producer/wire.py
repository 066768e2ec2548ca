"""Queue items to wire JSON, on the sender thread.

A typed call enqueues ``(WireType, time_ns, event_id | None, occurred_at | None, *values)`` with
values already checked (producer/checks.py); :class:`Encoder` writes the contract's JSON for it
with string templates (~2 µs here, a quarter of building and dumping the pydantic model). The tests
decode every event type through ``contract.decode`` to keep the two in step.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from json.encoder import encode_basestring
from typing import Any

from contract import codec, events
from contract.events import SCHEMA_VERSION
from contract.keys import Keys
from contract.routing import routing_id

Item = tuple[Any, ...]


class WireType:
    """One event type: its field order (the typed method's argument order), routing field and
    ``body``, which writes the fields after occurred_at (hand-written per type: a generic loop
    over the fields costs twice as much)."""

    __slots__ = ("body", "fields", "prefix", "route", "type")

    def __init__(
        self,
        model: type[events._Event] | None,
        fields: tuple[str, ...],
        route: str | None,
        body: Callable[[Item], str],
    ) -> None:
        self.type: str = model.model_fields["type"].default if model else "event"
        self.fields = fields
        self.prefix = f'{{"v":{SCHEMA_VERSION},"type":"{self.type}","event_id":'
        self.route = 4 + fields.index(route) if route else -1
        self.body = body


_s = encode_basestring


def _opt(value: str | None) -> str:
    return "null" if value is None else encode_basestring(value)


def _usage(value: tuple[int, int, int, int | None, int | None, int | None] | None) -> str:
    """A checked usage tuple (producer/checks.py: prompt, completion, total, then the parts or None)."""
    if value is None:
        return "null"
    text = f'{{"prompt_tokens":{value[0]:d},"completion_tokens":{value[1]:d},"total_tokens":{value[2]:d}'
    if value[3] is not None:
        text += f',"cache_read_tokens":{value[3]:d}'
    if value[4] is not None:
        text += f',"cache_write_tokens":{value[4]:d}'
    if value[5] is not None:
        text += f',"reasoning_tokens":{value[5]:d}'
    return text + "}"


def _also(name: str, value: str | int | None) -> str:
    """An optional field after the others: nothing when None (absent means not given)."""
    if value is None:
        return ""
    return f',"{name}":{value:d}' if isinstance(value, int) else f',"{name}":{encode_basestring(value)}'


SESSION_STARTED = WireType(
    events.SessionStarted,
    ("session_id", "model", "user_id"),
    "session_id",
    lambda v: f',"session_id":{_s(v[4])},"model":{_s(v[5])}{_also("user_id", v[6])}}}',
)
SESSION_MESSAGE_COUNT = WireType(
    events.SessionMessageCount,
    ("session_id", "message_count"),
    "session_id",
    lambda v: f',"session_id":{_s(v[4])},"message_count":{v[5]:d}}}',
)
SESSION_COMPLETED = WireType(
    events.SessionCompleted,
    ("session_id", "status"),
    "session_id",
    lambda v: f',"session_id":{_s(v[4])},"status":{_s(v[5])}}}',
)
ROUND_STARTED = WireType(
    events.RoundStarted,
    ("round_id", "session_id", "model", "provider"),
    "session_id",
    lambda v: f',"round_id":{_s(v[4])},"session_id":{_s(v[5])},"model":{_s(v[6])}{_also("provider", v[7])}}}',
)
ROUND_COMPLETED = WireType(
    events.RoundCompleted,
    (
        "round_id",
        "session_id",
        "status",
        "usage",
        "prompt_cached_tool_outputs",
        "error",
        "time_to_first_token_ms",
    ),
    "session_id",
    lambda v: (
        f',"round_id":{_s(v[4])},"session_id":{_s(v[5])},"status":{_s(v[6])},"usage":{_usage(v[7])}'
        f',"prompt_cached_tool_outputs":{v[8]:d},"error":{_opt(v[9])}'
        f"{_also('time_to_first_token_ms', v[10])}}}"
    ),
)
ROUND_COMPRESSED = WireType(
    events.RoundCompressed,
    ("round_id", "session_id", "tokens_saved"),
    "session_id",
    lambda v: f',"round_id":{_s(v[4])},"session_id":{_s(v[5])},"tokens_saved":{v[6]:d}}}',
)
TOOL_STARTED = WireType(
    events.ToolStarted,
    ("tool_call_id", "round_id", "session_id", "tool_name"),
    "session_id",
    lambda v: (
        f',"tool_call_id":{_s(v[4])},"round_id":{_s(v[5])},"session_id":{_s(v[6])},"tool_name":{_s(v[7])}}}'
    ),
)
TOOL_COMPLETED = WireType(
    events.ToolCompleted,
    ("tool_call_id", "round_id", "session_id", "success", "error"),
    "session_id",
    lambda v: (
        f',"tool_call_id":{_s(v[4])},"round_id":{_s(v[5])},"session_id":{_s(v[6])}'
        f',"success":{"true" if v[7] else "false"},"error":{_opt(v[8])}}}'
    ),
)
FORWARD_STARTED = WireType(
    events.ForwardStarted,
    ("forward_id", "endpoint", "model", "is_stream", "provider", "session_id", "round_id"),
    "forward_id",
    lambda v: (
        f',"forward_id":{_s(v[4])},"endpoint":{_s(v[5])},"model":{_s(v[6])}'
        f',"is_stream":{"true" if v[7] else "false"}'
        f"{_also('provider', v[8])}{_also('session_id', v[9])}{_also('round_id', v[10])}}}"
    ),
)
FORWARD_COMPLETED = WireType(
    events.ForwardCompleted,
    ("forward_id", "status", "status_code", "usage", "error", "time_to_first_token_ms"),
    "forward_id",
    lambda v: (
        f',"forward_id":{_s(v[4])},"status":{_s(v[5])},"status_code":{"null" if v[6] is None else int(v[6])}'
        f',"usage":{_usage(v[7])},"error":{_opt(v[8])}{_also("time_to_first_token_ms", v[9])}}}'
    ),
)
SYNC_MISMATCH = WireType(events.SyncMismatch, ("reason",), "reason", lambda v: f',"reason":{_s(v[4])}}}')
#: A ready-made contract event: ``(PREBUILT, time_ns, None, None, event)``.
PREBUILT = WireType(None, (), None, lambda v: "")

WIRE_TYPES: tuple[WireType, ...] = (
    SESSION_STARTED,
    SESSION_MESSAGE_COUNT,
    SESSION_COMPLETED,
    ROUND_STARTED,
    ROUND_COMPLETED,
    ROUND_COMPRESSED,
    TOOL_STARTED,
    TOOL_COMPLETED,
    FORWARD_STARTED,
    FORWARD_COMPLETED,
    SYNC_MISMATCH,
)


class Encoder:
    """Items to ``(stream, json bytes)``; owns the UUIDv7 clock. One per sender thread."""

    def __init__(self, keys: Keys, rng: random.Random | None = None) -> None:
        self._keys = keys
        self._single = keys.stream if keys.shards == 1 else None
        self._rng = rng or random.Random()
        self._ms = -1
        self._counter = 0
        self._id_head = ""
        self._sec = -1
        self._sec_text = ""

    def __call__(self, item: Item) -> tuple[str, bytes]:
        wire: WireType = item[0]
        if wire is PREBUILT:
            return self._prebuilt(item[4])
        event_id = item[2]
        event_id = f'"{self.uuid7(item[1])}"' if event_id is None else encode_basestring(event_id)
        occurred = item[3]
        stamp = self.stamp(item[1]) if occurred is None else format_datetime(occurred)
        text = f'{wire.prefix}{event_id},"occurred_at":"{stamp}"{wire.body(item)}'
        return self._single or self._keys.stream_for(item[wire.route]), text.encode()

    def _prebuilt(self, event: Any) -> tuple[str, bytes]:
        # The contract's routing field by type (a forward linked to a session routes by forward_id).
        return self._single or self._keys.stream_for(routing_id(event)), codec.encode(event)

    def uuid7(self, ns: int) -> str:
        """A UUIDv7 for a call made at ``ns``: the millisecond, 12 random bits drawn each
        millisecond, then a 62-bit counter started at a random value (RFC 9562 6.2, method 2), so
        ids from one encoder increase strictly."""
        ms = ns // 1_000_000
        if ms > self._ms:
            self._ms = ms
            self._counter = self._rng.getrandbits(61)
            h = f"{ms:012x}"
            self._id_head = f"{h[:8]}-{h[8:]}-7{self._rng.getrandbits(12):03x}-"
        else:
            self._counter += 1
            if self._counter >> 62:  # 2**61 ids in one millisecond: borrow the next one
                return self.uuid7((self._ms + 1) * 1_000_000)
        tail = f"{(0b10 << 62) | self._counter:016x}"
        return f"{self._id_head}{tail[:4]}-{tail[4:]}"

    def stamp(self, ns: int) -> str:
        sec = ns // 1_000_000_000
        if sec != self._sec:
            self._sec = sec
            self._sec_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
        return f"{self._sec_text}.{ns // 1000 % 1_000_000:06d}Z"


def format_datetime(value: datetime) -> str:
    utc = value.astimezone(UTC).replace(tzinfo=None)
    return utc.isoformat(timespec="microseconds") + "Z"
