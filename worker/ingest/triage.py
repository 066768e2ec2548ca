"""Triage: a batch's entries, decoded, sorted by what happens to each next.

Each entry is applied, isolated as a suspect, dead-lettered, or acked as gone. Pure: no I/O, so
the Worker can run it while PostgreSQL still applies the previous batch.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import NamedTuple

from contract.codec import STREAM_FIELD, ContractError, decode
from contract.entries import as_text
from contract.events import Event
from contract.fields import DEFAULT_MAX_EVENT_BYTES
from worker.ingest.stream import Batch, Entry, Letter

log = logging.getLogger(__name__)

_EVENT_FIELD = STREAM_FIELD.encode()


class Suspect(NamedTuple):
    """An entry delivered more often than the limit: applied alone, so it cannot hold back others."""

    entry: Entry
    event: Event
    deliveries: int


@dataclass(frozen=True)
class Triaged:
    """A batch, decoded and sorted into what to apply, what to isolate and what to dead-letter."""

    batch: Batch
    good: list[tuple[Entry, Event]]  # (entry, its event), in stream order
    suspects: list[Suspect]
    letters: list[Letter]
    gone: list[bytes]  # ids trimmed from the stream while pending: only to ack
    seconds: float  # what triage took (counted in the batch's apply time)


def sort_entries(batch: Batch, limit: int, max_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> Triaged:
    """Decode every entry and sort it by what happens to it next. Pure: no I/O. An entry over
    ``max_bytes`` is dead-lettered without being parsed (a parser's cost grows with its input)."""
    started = time.perf_counter()
    good: list[tuple[Entry, Event]] = []
    suspects: list[Suspect] = []
    letters: list[Letter] = []
    gone: list[bytes] = []
    for entry in batch.entries:
        entry_id, fields = entry
        deliveries = batch.deliveries.get(entry_id, 1)
        if fields is None:
            gone.append(entry_id)
            continue
        raw = fields.get(_EVENT_FIELD)
        if raw is None:
            names = sorted(map(as_text, fields))
            reason = f"missing field: no '{STREAM_FIELD}' field (fields: {names})"
            letters.append(Letter(entry, deliveries, reason))
            continue
        if len(raw) > max_bytes:
            reason = (
                f"too large: {len(raw):,} bytes, over the limit of {max_bytes:,} (METRICS_MAX_EVENT_BYTES)"
            )
            letters.append(Letter(entry, deliveries, reason))
            continue
        try:
            event = decode(raw)
        except ContractError as exc:
            letters.append(Letter(entry, deliveries, f"invalid event: {exc}"))
            continue
        except Exception as exc:  # else this entry would crash every worker that claims it
            log.exception("entry %s could not be decoded", entry_id.decode())
            reason = f"invalid event: the decoder failed ({type(exc).__name__}: {exc})"
            letters.append(Letter(entry, deliveries, reason))
            continue
        if deliveries > 2 * limit:
            reason = (
                f"poison: delivered {deliveries} times and every attempt "
                f"died before committing (limit {limit})"
            )
            letters.append(Letter(entry, deliveries, reason))
        elif deliveries > limit:
            suspects.append(Suspect(entry, event, deliveries))
        else:
            good.append((entry, event))
    return Triaged(batch, good, suspects, letters, gone, time.perf_counter() - started)


__all__ = ["Suspect", "Triaged", "sort_entries"]
