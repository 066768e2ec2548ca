"""Redis stream entries as every side reads them: ids in their order, field values as text.

The producer, the worker and the read side all read entries that other processes (and other
languages) wrote; these are the one parser of an entry id and the one bytes-to-text rule.
"""

from __future__ import annotations

from typing import Any

#: An entry id as a sortable pair: ``1700000000000-3`` is ``(1700000000000, 3)``.
EntryId = tuple[int, int]


def parse_id(raw: bytes | str) -> EntryId:
    """``ms-seq`` (bytes or text) as ``(ms, seq)``; a bare ``ms`` is ``(ms, 0)``, as Redis reads it.
    Raises ValueError for anything else."""
    text = raw.decode() if isinstance(raw, bytes) else raw
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


def format_id(entry: EntryId) -> str:
    return f"{entry[0]}-{entry[1]}"


def next_id(entry: EntryId) -> EntryId:
    """The smallest id after ``entry`` (for an exclusive range start)."""
    return entry[0], entry[1] + 1


def as_text(value: Any) -> str:
    """A field value or a reply as text: bytes decoded as UTF-8 (an invalid byte shown as U+FFFD,
    never an error: a letter must stay readable whatever its producer wrote), anything else str()."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
