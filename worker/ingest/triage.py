"""Triage: a batch's entries decoded and sorted by what happens to each next (apply, isolate as a
suspect, dead-letter, ack as gone). Pure: no I/O, so the Worker can run it while PostgreSQL still
applies the previous batch."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from contract.codec import STREAM_FIELD, ContractError, decode
from contract.events import Event
from contract.fields import DEFAULT_MAX_EVENT_BYTES
from worker.engine.apply import Prepared
from worker.ingest.stream import Batch, Entry

log = logging.getLogger(__name__)

_EVENT_FIELD = STREAM_FIELD.encode()


@dataclass
class Sorted:
    """A batch, decoded and sorted into what to apply, what to isolate and what to dead-letter."""

    batch: Batch
    good: list[tuple[Entry, Event]] = field(default_factory=list)
    suspects: list[tuple[Entry, Event, int]] = field(default_factory=list)  # redelivered too often
    letters: list[tuple[Entry, int, str]] = field(default_factory=list)
    gone: list[bytes] = field(default_factory=list)  # trimmed from the stream while pending
    seconds: float = 0.0
    prepared: Prepared | None = None  # the good entries' statements, built ahead


def sort_entries(batch: Batch, limit: int, max_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> Sorted:
    """Decode every entry and sort it by what happens to it next. Pure: no I/O. An entry over
    ``max_bytes`` is dead-lettered without being parsed (a parser's cost grows with its input)."""
    started = time.perf_counter()
    out = Sorted(batch)
    for entry in batch.entries:
        entry_id, fields = entry
        deliveries = batch.deliveries.get(entry_id, 1)
        if fields is None:
            out.gone.append(entry_id)
            continue
        raw = fields.get(_EVENT_FIELD)
        if raw is None:
            names = sorted(k.decode("utf-8", "replace") for k in fields)
            out.letters.append(
                (entry, deliveries, f"missing field: no '{STREAM_FIELD}' field (fields: {names})")
            )
            continue
        if len(raw) > max_bytes:
            reason = (
                f"too large: {len(raw):,} bytes, over the limit of {max_bytes:,} (METRICS_MAX_EVENT_BYTES)"
            )
            out.letters.append((entry, deliveries, reason))
            continue
        try:
            event = decode(raw)
        except ContractError as exc:
            out.letters.append((entry, deliveries, f"invalid event: {exc}"))
            continue
        except Exception as exc:  # else this entry would crash every worker that claims it
            log.exception("entry %s could not be decoded", entry_id.decode())
            out.letters.append(
                (entry, deliveries, f"invalid event: the decoder failed ({type(exc).__name__}: {exc})")
            )
            continue
        if deliveries > 2 * limit:
            out.letters.append(
                (
                    entry,
                    deliveries,
                    (
                        f"poison: delivered {deliveries} times and every attempt "
                        f"died before committing (limit {limit})"
                    ),
                )
            )
        elif deliveries > limit:
            out.suspects.append((entry, event, deliveries))
        else:
            out.good.append((entry, event))
    out.seconds = time.perf_counter() - started
    return out


__all__ = ["Sorted", "sort_entries"]
