"""The Worker: reads batches from the consumer group, applies them, acks only after the commit.

Delivery is at-least-once (an entry is acked only after its batch committed, so a crash between
the two redelivers it) and the apply engine is idempotent, so the effect is exactly once.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import psycopg
import redis

from contract.backoff import Backoff, Patience, full_jitter
from contract.connect import TRANSIENT_ERRORS
from contract.events import Event
from worker.engine.apply import Applied, InFlight, Prepared, apply_events, prepare, pricer_for, start
from worker.engine.pricing import PriceList
from worker.errors import PermanentError, PostgresError, TransientError
from worker.ingest.database import Database
from worker.ingest.housekeeping import remove_idle_consumers, trim_acknowledged, warn_unrouted
from worker.ingest.observer import Finished, Observer
from worker.ingest.prometheus import Prometheus
from worker.ingest.signals import stop_on_signals
from worker.ingest.stream import Batch, Entry, Letter, StreamClient, check_url, open_stream
from worker.ingest.triage import Triaged, sort_entries
from worker.schema import apply_schema
from worker.settings import WorkerSettings

log = logging.getLogger(__name__)

_REDIS_ERRORS = TRANSIENT_ERRORS


def tune_gc_for_batches() -> None:
    """Process-wide, so for the process's owner to call (``metrics-worker run`` does): a batch
    allocates tens of thousands of short-lived, acyclic objects (events, rows, params) that
    reference counting frees, and the default cycle collector would scan them every 700
    allocations. Collect the youngest generation every 50,000 instead, and move what start-up
    loaded (modules, settings) out of the collector's way for good."""
    gc.freeze()
    gc.set_threshold(50_000, *gc.get_threshold()[1:])


class Abandoned(Exception):
    """Stop was requested while a batch could not be committed; it stays pending for redelivery."""


_UNFINISHED: tuple[type[Exception], ...] = (PostgresError, Abandoned, *_REDIS_ERRORS)  # stay pending


@dataclass
class Totals:
    batches: int = 0
    applied: int = 0
    dead_lettered: int = 0


def _new_backoff() -> Backoff:
    """The worker's wait between attempts at a server: 0-100 % of a delay that doubles from 0.1 s
    to 5 s (full jitter, so workers that failed together do not come back together)."""
    return Backoff(0.1, 5.0, full_jitter)


class Refusal(NamedTuple):
    """An entry PostgreSQL refused (a data error, found by bisecting its batch), with the error."""

    entry: Entry
    event: Event
    reason: str


class _Sent(NamedTuple):
    """A batch sent to PostgreSQL and not yet confirmed (perf_counter ``started``)."""

    triaged: Triaged
    started: float
    inflight: InFlight


@dataclass(frozen=True)
class _Committed:
    """A batch committed, before its ack: what to ack, what to dead-letter."""

    triaged: Triaged
    applied: list[tuple[Entry, Event]]
    letters: list[Letter]
    started: float  # perf_counter when its apply began


class Worker:
    """One consumer of the group. ``run(burst=True)`` drains and exits; ``stop()`` is idempotent."""

    def __init__(
        self,
        settings: WorkerSettings,
        *,
        handle_signals: bool = True,
        on_commit: Callable[[list[Event]], None] | None = None,
        give_up_after: float | None = None,
        observer: Observer | None = None,
    ) -> None:
        self.settings, self._limits = settings, (settings.max_deliveries, settings.max_event_bytes)
        self._patience = Patience(give_up_after)  # how long a burst run retries a server away
        self.handle_signals = handle_signals
        self.on_commit = on_commit  # called with the events of each committed batch (benchmarks)
        self.observer: Observer = observer or Prometheus()
        check_url(settings.redis_url)
        # Loaded once: a price list must not change under a running worker (a bad file: one line).
        self._prices = PriceList.load(settings.prices_file)
        self._pricer = pricer_for(self._prices)
        self._stream: StreamClient | None = None  # connected at start: Redis may be away until then
        self.totals = Totals()
        self._stop = threading.Event()
        self._db = Database(
            settings.database_url, f"metrics-worker:{settings.consumer}", settings.connect_timeout
        )
        self._backoff = _new_backoff()
        self._next_housekeeping = 0.0
        self._next_claim = 0.0
        self._caught_up = False
        self._inflight: _Sent | None = None
        self._queued: deque[Batch] = deque()  # read, not yet applied (pending on this consumer)

    @property
    def stream(self) -> StreamClient:
        """The Redis side, connected on first use (one Redis or a cluster: contract/connect.py)."""
        self._stream = self._stream or open_stream(self.settings)
        return self._stream

    # -- lifecycle ----------------------------------------------------------------------------

    def stop(self) -> None:
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def run(self, burst: bool = False) -> int:
        self._patience.limit = self._patience.limit if burst else None  # long-running: for ever
        with stop_on_signals(self.stop, self.handle_signals):
            self._start()
            while not self.stopping:
                try:
                    did_work = self._step(burst)
                    if burst and not did_work and self._drained():
                        log.info(
                            "burst: group drained, exiting (applied %d, dead-lettered %d)",
                            self.totals.applied,
                            self.totals.dead_lettered,
                        )
                        break
                    if burst and not did_work:
                        self._stop.wait(0.05)  # entries pending on live consumers: wait for them
                    self._backoff.reset()
                    self._patience.reset()
                except _REDIS_ERRORS as exc:
                    self._pause(f"Redis unavailable ({exc})", exc)
                except redis.ResponseError as exc:
                    if "NOGROUP" not in str(exc):
                        raise
                    # The group (or the stream) was deleted under us: create it again. It starts
                    # from the stream's first entry; applying what was applied before changes nothing.
                    self._pause(f"consumer group gone ({exc}); creating it again")
                    self.stream.ensure_groups()
                except Abandoned:
                    break
        self.close()
        return 0

    def close(self) -> None:
        try:
            self._finish_inflight()
        except _UNFINISHED as exc:
            log.warning("batch in flight at exit not finished (%s); it will be redelivered", exc)
        self._db.close()
        if self._stream is not None:
            self._stream.client.close()

    def _start(self) -> None:
        while not self.stopping:
            try:
                self.stream.ensure_groups()
                apply_schema(self._db.connection())
                for batch in self.stream.read_own_pending(self.settings.batch_size):
                    self._process(batch)
                return self._patience.reset()  # started: failures before it are forgotten
            except _REDIS_ERRORS as exc:
                self._pause(f"Redis unavailable at start ({exc})", exc)
            except (psycopg.Error, TransientError) as exc:
                self._db.close()
                self._pause(f"PostgreSQL unavailable at start ({exc})", exc)
            except Abandoned:
                return

    def _pause(self, why: str, cause: Exception | None = None) -> None:
        self._give_up_if_too_long(cause)
        now = time.monotonic()
        delay = self._backoff.failed(now) - now
        log.warning("%s; retrying in %.2fs", " ".join(why.split()), delay)
        self._stop.wait(delay)

    def _give_up_if_too_long(self, cause: Exception | None) -> None:
        """Re-raise ``cause``, saying so, once failures have lasted the burst run's patience."""
        lasted = None if cause is None else self._patience.exhausted(time.monotonic())
        if lasted is not None:
            why = f"unreachable for {lasted:.0f} s, giving up (--give-up-after): {cause}"
            if isinstance(cause, redis.RedisError):
                raise redis.ConnectionError(why) from cause
            raise TransientError(f"{why} (check --database-url / DATABASE_URL)") from cause

    # -- one iteration ------------------------------------------------------------------------

    def _step(self, burst: bool) -> bool:
        """One iteration. New entries are read, decoded and turned into statements while
        PostgreSQL still applies the previous batch; once that batch is confirmed, this one is
        sent, and the previous one acked while PostgreSQL works on this one."""
        did_work = False
        now = time.monotonic()
        # A burst worker that has caught up claims on every step, so it can exit as soon as what
        # dead consumers left is applied; while new entries flow, claiming every step would scan
        # the pending list (our own batch in flight included) for nothing.
        if now >= self._next_claim or (burst and self._caught_up):
            self._next_claim = now + max(self.settings.claim_idle_ms / 2000, 0.5)
            claimed = self.stream.claim_stale(self.settings.batch_size, self.settings.claim_idle_ms)
            if claimed:
                self._finish_inflight()
            for batch in claimed:
                self._process(batch)
                did_work = True
        if not self._queued:  # a read returns a batch per shard that had entries; take them in turn
            waiting = burst or self._inflight is not None  # never block while a batch awaits its ack
            block = None if waiting else self.settings.block_ms
            self._queued.extend(self.stream.read_new(self.settings.batch_size, block))
        new = self._queued.popleft() if self._queued else None
        self._caught_up = new is None
        triaged = sort_entries(new, *self._limits) if new is not None else None
        prepared = None
        if triaged is not None and triaged.good and not triaged.suspects:
            prepared = prepare([event for _, event in triaged.good], self._pricer)
        committed = self._confirm_inflight()
        try:
            if triaged is not None:
                self._send(triaged, prepared)
                did_work = True
        finally:
            if committed is not None:
                self._after_commit(committed)
        if time.monotonic() >= self._next_housekeeping:
            self._housekeeping()
        return did_work

    def _send(self, triaged: Triaged, prepared: Prepared | None) -> None:
        """Start applying a batch (``prepared``: its good entries' statements, built ahead)
        without waiting; one needing care (suspects, nothing prepared) goes the synchronous way."""
        if prepared is None:
            self._apply_triaged(triaged)
            return
        try:
            inflight = start(self._db.connection(), prepared, self._prices)
        except PostgresError:
            self._db.drop_if_broken()
            self._apply_triaged(triaged)
            return
        self._inflight = _Sent(triaged, time.perf_counter(), inflight)

    def _finish_inflight(self) -> None:
        committed = self._confirm_inflight()
        if committed is not None:
            self._after_commit(committed)

    def _confirm_inflight(self) -> _Committed | None:
        """Wait for the batch in flight. Committed: what to ack for it (the caller acks). Failed:
        redone the careful way (retries, bisection) and acked here."""
        if self._inflight is None:
            return None
        triaged, started, inflight = self._inflight
        self._inflight = None
        try:
            inflight.wait()
        except PostgresError as exc:  # rolled back
            if self.stopping:  # not worth a retry now: it stays pending, for redelivery
                raise Abandoned() from exc
            log.warning("batch failed in flight (%s); applying it again step by step", exc)
            self._db.drop_if_broken()
            self._apply_triaged(triaged)
            return None
        return _Committed(triaged, triaged.good, triaged.letters, started)

    def _drained(self) -> bool:
        undelivered, pending = self.stream.backlog()
        return undelivered == 0 and pending == 0

    def _housekeeping(self) -> None:
        self._next_housekeeping = time.monotonic() + self.settings.trim_every_s
        for stream, (lag, pending) in self.stream.report_lag().items():
            self.observer.backlog(stream, lag, pending)
        trimmed = trim_acknowledged(self.stream)
        if trimmed:
            log.debug("trimmed %d acknowledged entries", trimmed)
        remove_idle_consumers(self.stream, self.settings.consumer_idle_ms)
        warn_unrouted(self.stream)

    # -- one batch ----------------------------------------------------------------------------

    def _process(self, batch: Batch) -> None:
        self._apply_triaged(sort_entries(batch, *self._limits))

    def _apply_triaged(self, triaged: Triaged) -> None:
        started = time.perf_counter()
        batch, limit = triaged.batch, self.settings.max_deliveries
        refusals = self._apply_or_isolate(triaged.good)
        refused = {refusal.entry[0] for refusal in refusals}
        letters = triaged.letters + [
            Letter(r.entry, batch.deliveries.get(r.entry[0], 1), r.reason) for r in refusals
        ]
        applied = [(entry, event) for entry, event in triaged.good if entry[0] not in refused]
        # Entries redelivered too often are applied one by one, so one poison cannot hold back the rest.
        for entry, event, deliveries in triaged.suspects:
            failed = self._apply_or_isolate([(entry, event)])
            if failed:
                why = f"poison: delivered {deliveries} times (limit {limit}), then alone: {failed[0].reason}"
                letters.append(Letter(entry, deliveries, why))
            else:
                applied.append((entry, event))
        self._after_commit(_Committed(triaged, applied, letters, started))

    def _after_commit(self, done: _Committed) -> None:
        batch, gone, applied, letters = done.triaged.batch, done.triaged.gone, done.applied, done.letters
        applied_ids = [entry[0] for entry, _ in applied]
        events = [event for _, event in applied]
        if self.on_commit is not None:
            self.on_commit(events)
        # Ack only now, after the commit: a crash before this line redelivers, which is harmless.
        self.stream.ack(batch.stream, applied_ids + gone)
        self.stream.dead_letter(batch.stream, letters)
        if gone:
            log.warning("acked %d entries trimmed from %s before they were applied", len(gone), batch.stream)
        elapsed = time.perf_counter() - done.started + done.triaged.seconds
        self.observer.finished(Finished(batch.stream, len(batch.entries), events, letters, elapsed))
        self.totals.batches += 1
        self.totals.applied += len(applied_ids)
        self.totals.dead_lettered += len(letters)
        log.info(
            "batch stream=%s entries=%d applied=%d dead_lettered=%d ms=%.1f",
            batch.stream,
            len(batch.entries),
            len(applied_ids),
            len(letters),
            elapsed * 1000,
        )

    def _apply_or_isolate(self, items: list[tuple[Entry, Event]]) -> list[Refusal]:
        """Apply; if PostgreSQL refuses the data, bisect to the entries it refuses and return them."""
        if not items:
            return []
        try:
            self._apply_retrying([event for _, event in items])
            return []
        except PermanentError as exc:
            if len(items) == 1:
                entry, event = items[0]
                return [Refusal(entry, event, f"refused: PostgreSQL refused it: {exc}")]
            mid = len(items) // 2
            return self._apply_or_isolate(items[:mid]) + self._apply_or_isolate(items[mid:])

    def _apply_retrying(self, events: list[Event]) -> Applied:
        wait = _new_backoff()
        while True:
            try:
                return apply_events(self._db.connection(), events, self._prices)
            except TransientError as exc:
                self.observer.retrying("database")
                self._db.drop_if_broken()
                if self.stopping:
                    raise Abandoned() from exc
                self._give_up_if_too_long(exc)
                now = time.monotonic()
                delay = wait.failed(now) - now
                log.warning(
                    "apply failed, retrying the batch in %.2fs: %s", delay, " ".join(str(exc).split())
                )
                self._stop.wait(delay)


__all__ = ["Abandoned", "Refusal", "Worker"]
