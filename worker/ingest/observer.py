"""What a Worker tells whoever watches it (metrics, a test) about its batches, off the apply path.

The Worker calls an :class:`Observer` at three moments and never reads anything back, so a metrics
backend is a plug-in, not part of the loop (dramatiq's "metrics as middleware"). The Prometheus
one is worker/ingest/prometheus.py, the Worker's default.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from contract.events import Event
from worker.ingest.stream import Letter


@dataclass(frozen=True)
class Finished:
    """A batch done with: its applied events committed and acked, its letters dead-lettered."""

    stream: str
    entries: int  # read in the batch (applied, dead-lettered, or acked as gone)
    applied: list[Event]
    letters: list[Letter]
    seconds: float  # triage, apply and commit, ack


class Observer(Protocol):
    def finished(self, batch: Finished) -> None:
        """A batch was committed and acked."""

    def retrying(self, kind: str) -> None:
        """An apply failed for a transient reason (``kind``: what failed) and is tried again."""

    def backlog(self, stream: str, undelivered: int, pending: int) -> None:
        """The group's backlog on ``stream``, looked at during housekeeping."""
