"""The ids the receiver gives what it maps, derived from the span, never drawn: an export sent
again (OTLP clients re-send after any doubt) gives the same ids, so the worker's merge applies its
events once.

- An event id is a UUIDv5 in :data:`NAMESPACE` of ``<trace id>/<span id>/<event type>`` (a
  session.started: ``session/<session id>/session.started``).
- A round, tool call or forward is ``<trace id>-<span id>``: its tail, what the tables show, is the
  span id.
"""

from __future__ import annotations

import hashlib
import uuid

#: The namespace of every event id the receiver derives (``uuid.uuid5(NAMESPACE, name)``).
NAMESPACE = uuid.UUID("e80ebad5-4451-4d39-be25-384b44beeed4")
_NAMESPACE_BYTES = NAMESPACE.bytes
_sha1 = hashlib.sha1
#: The variant bits (10xx) set on a hex digit.
_VARIANT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}


def event_id(name: str) -> str:
    """``str(uuid.uuid5(NAMESPACE, name))``, without building the UUID object (hot path)."""
    h = _sha1(_NAMESPACE_BYTES + name.encode()).hexdigest()
    return f"{h[:8]}-{h[8:12]}-5{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:32]}"


def span_event_id(trace_id: str, span_id: str, event_type: str) -> str:
    """The id of the event of type ``event_type`` that the span ``trace_id``/``span_id`` makes."""
    return event_id(f"{trace_id}/{span_id}/{event_type}")


def entity_id(trace_id: str, span_id: str) -> str:
    """The round, tool call or forward id of a span."""
    return f"{trace_id}-{span_id}"
