"""What a dead letter holds: the fields a worker writes, read back the same way in any language.

A dead letter is one entry of a dead-letter stream (contract/keys.py: ``Keys.dead_letters_for`` a
stream, listed by ``Keys.dead_letter_streams``), written by the worker that gave up on an entry,
in the same script that acks it. Its fields, every value a Redis string:

=============  ============================================================================
``payload``    the entry's ``event`` field, byte for byte (need not be UTF-8 nor JSON); an
               entry without an ``event`` field is kept whole, as a JSON object of its fields
``stream``     the stream the entry was read from
``entry_id``   its id in that stream (``ms-seq``)
``group``      the consumer group
``consumer``   the worker's consumer name
``deliveries`` how many times the group delivered it (decimal)
``reason``     why it could not be applied, UTF-8, at most ``REASON_LIMIT`` characters
``failed_at``  when, RFC 3339 in UTC with milliseconds (``2026-12-06T10:00:00.123+00:00``)
=============  ============================================================================

A reader takes a missing field as empty (0 for ``deliveries``): letters written by hand or by
another tool stay readable. The letter's own id in its dead-letter stream names it (``dlq show``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from contract.codec import STREAM_FIELD
from contract.entries import as_text

#: The longest reason kept (a reason quoting a huge value would otherwise grow every letter).
REASON_LIMIT = 2000

#: The fields of a dead letter, in the order a worker writes them.
LETTER_FIELDS = ("payload", "stream", "entry_id", "group", "consumer", "deliveries", "reason", "failed_at")


@dataclass(frozen=True)
class DeadLetter:
    """One dead letter as read back; ``key`` is the dead-letter stream it is in."""

    id: str
    stream: str
    entry_id: str
    group: str
    consumer: str
    deliveries: int
    reason: str
    failed_at: str
    payload: bytes
    key: str = ""

    @classmethod
    def from_entry(cls, entry_id: bytes | str, fields: dict[Any, Any], key: str = "") -> DeadLetter:
        """The letter of one dead-letter stream entry (field names and values as bytes or text)."""
        named = {as_text(name): value for name, value in fields.items()}

        def text(name: str) -> str:
            return as_text(named.get(name, b""))

        payload = named.get("payload", b"")
        deliveries = text("deliveries")
        return cls(
            id=as_text(entry_id),
            stream=text("stream"),
            entry_id=text("entry_id"),
            group=text("group"),
            consumer=text("consumer"),
            deliveries=int(deliveries) if deliveries.isdigit() else 0,
            reason=text("reason"),
            failed_at=text("failed_at"),
            payload=payload if isinstance(payload, bytes) else str(payload).encode(),
            key=key,
        )

    def as_dict(self) -> dict[str, Any]:
        """Every field as JSON can carry it: the payload as text, an invalid byte as ``\\xNN``."""
        return {
            "id": self.id,
            "stream": self.stream,
            "entry_id": self.entry_id,
            "group": self.group,
            "consumer": self.consumer,
            "deliveries": self.deliveries,
            "reason": self.reason,
            "failed_at": self.failed_at,
            "payload": self.payload.decode("utf-8", "backslashreplace"),
        }


def payload_of(fields: dict[bytes, bytes]) -> bytes:
    """The original event bytes; an entry without an ``event`` field is kept whole, as JSON."""
    raw = fields.get(STREAM_FIELD.encode())
    if raw is not None:
        return raw
    return json.dumps(
        {
            k.decode("utf-8", "backslashreplace"): v.decode("utf-8", "backslashreplace")
            for k, v in fields.items()
        }
    ).encode()


def letter_fields(
    *, payload: bytes, stream: str, entry_id: str, group: str, consumer: str, deliveries: int, reason: str
) -> dict[str, bytes | str | int]:
    """The fields of a new dead letter (``LETTER_FIELDS``), ``failed_at`` now."""
    return {
        "payload": payload,
        "stream": stream,
        "entry_id": entry_id,
        "group": group,
        "consumer": consumer,
        "deliveries": deliveries,
        "reason": reason[:REASON_LIMIT],
        "failed_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
    }
