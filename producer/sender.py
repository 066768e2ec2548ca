"""The background sender: queue -> batches -> Redis, or the spool while Redis is away.

Three modes. ``up``: each batch goes straight to Redis. ``down`` (a send failed): batches go to
the spool and a probe thread retries the connection with backoff. ``recovering`` (the probe got
through, or a dead publisher's spool was adopted at start): new batches still go to the spool
behind the old ones while the spool is replayed in order; when it is empty, back to ``up``. So
one publisher's events reach Redis in the order they were published.

Redis slower than the agent is an outage too: past half the queue, ``recovering`` (the queue
drains at the disk's speed). Every refused write (timeout, lost connection, OOM, wrong key type)
is spooled and retried with backoff, logged once per outage; heartbeats go on during a replay.

Exactly once per batch, and the wire of a batch: producer/delivery.py.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections import deque
from typing import Any

import redis

from contract.backoff import Backoff
from contract.connect import Client, describe
from producer.delivery import SEND_ERRORS, Batch, add_batches, check_reachable, connect, safe_url
from producer.handoff import Mark, Parked, take
from producer.hints import HintWriter
from producer.metrics import Counters
from producer.settings import ProducerSettings
from producer.spool import Spool
from producer.wire import Encoder, Item

log = logging.getLogger(__name__)

UP, DOWN, RECOVERING = "up", "down", "recovering"


class Sender:
    """Owns the Redis connection, the spool and the encoder; runs on its own daemon thread."""

    def __init__(
        self,
        settings: ProducerSettings,
        queue: deque[Any],
        wake: threading.Event,
        hints: HintWriter,
        counters: Counters,
    ) -> None:
        self.settings = settings
        self.token = uuid.uuid4().hex
        self.mode = UP
        self._queue = queue
        self._wake = wake
        self._hints = hints
        self._counters = counters
        self._encoder = Encoder(settings.keys)
        self._seq = 0
        self._spool: Spool | None = None
        self._client: Client | None = None  # connected on first send: Redis may be away at start
        self._parked = Parked()  # flush marks waiting for the spool's replay
        self._stop: Mark | None = None
        #: Set by close(): past ``spill_at`` (monotonic) batches go to the spool, not to Redis.
        self.spill_at: float | None = None
        self.stop_at: float | None = None
        self._backoff = Backoff(settings.retry_initial, settings.retry_max)
        self._next_probe = 0.0
        self._probing = False
        self._probe_ok = False
        self._replayed_this_outage = 0
        self._episode = False  # an outage has been logged and has not ended yet
        self._overflow_logged = -60.0
        self._high = max(1, settings.queue_size // 2)
        #: Set after each step: a publisher whose queue is at its hard cap waits on it (publisher.py).
        self.progress = threading.Event()
        #: Set by a publisher that found its queue at the hard cap: spool from the next step on.
        self.outrun = False
        self._thread = threading.Thread(target=self._run, name="metrics-producer-sender", daemon=True)

    def start(self) -> None:
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def spooled(self) -> tuple[int, int]:
        """Events and bytes waiting in the spool."""
        return (self._spool.pending_events, self._spool.pending_bytes) if self._spool else (0, 0)

    def abandon(self) -> None:
        """In a forked child: let go of the parent's descriptors without touching its files."""
        if self._spool is not None:
            self._spool.abandon()

    def _run(self) -> None:
        settings = self.settings
        self._spool = Spool(settings.spool_dir, settings.spool_max_bytes, self.token, settings.spool_fsync)
        failures = 0
        try:
            self._adopt()
        except Exception:  # what cannot be adopted now is left for a later publisher
            log.exception("metrics producer: adopting earlier spools failed; continuing without them")
        while True:
            try:
                if self._step():
                    break
                failures = 0
            except Exception:  # never die: a bug here must not stop delivery for the process
                failures += 1
                if failures <= 3 or failures % 100 == 0:  # a persistent error must not flood the log
                    log.exception("metrics producer: sender step failed (%d in a row); continuing", failures)
                # Not _wake.wait(): the flag may still be set, and a persistent error would spin.
                time.sleep(min(0.1 * failures, 2.0))
        self._finish()

    def _adopt(self) -> None:
        assert self._spool is not None
        try:
            found = self._spool.adopt_orphans()
        except OSError as exc:
            log.error("cannot read spool directory %s: %s", self.settings.spool_dir, exc)
            return
        if found and self.mode == UP:
            self.mode = RECOVERING
            log.info("replaying %d spooled events of earlier publishers before new ones", found)

    # -- one step ---------------------------------------------------------------------------

    def _step(self) -> bool:
        """Handle one batch from the queue (all of it when not up) and one from the spool; True
        when stopped."""
        if self.mode == UP:
            items, mark = take(self._queue, self.settings.batch_size)
            if items:
                self._handle(items)
            if mark is not None:
                self._on_mark(mark)
            if self.mode == UP and (len(self._queue) >= self._high or self.outrun):
                self._overflowing()
        if self.mode != UP:
            self._spill()
        self.progress.set()
        now = time.monotonic()
        if self.mode == DOWN:
            self._maybe_probe(now)
        # An agent outrunning Redis: the queue to disk first (a replay's round trip lets it fill)
        if self.mode == RECOVERING and len(self._queue) < self._high:
            self._replay_some()
        if self.mode != DOWN and self._hints.due(now):
            self._sync_hints(now)
        if self._stop is not None:
            replaying = self.mode == RECOVERING and now < (self.stop_at or now)
            if not self._queue and not replaying:
                return True
        if not self._queue and not (self.mode == RECOVERING and self._spool and not self._spool.empty):
            self._wake.clear()
            if not self._queue:
                self._wake.wait(self._idle_timeout(now))
        return False

    def _spill(self) -> None:
        """What is queued now to the spool, in order, flush marks parked in their place."""
        left = len(self._queue)
        while left > 0 and self._stop is None:
            left -= self.settings.batch_size
            items, mark = take(self._queue, self.settings.batch_size)
            if items:
                self._handle(items)
            if mark is not None:
                self._on_mark(mark)

    def _overflowing(self) -> None:
        """Redis takes events slower than the agent makes them: spool and replay, in order."""
        self.mode, self.outrun, self._replayed_this_outage = RECOVERING, False, 0
        self._counters.add("overflows")
        now = time.monotonic()
        if now >= self._overflow_logged + 60:  # a flood comes and goes: one line a minute at most
            self._overflow_logged = now
            log.warning(
                "metrics producer: %d events queued, Redis is slower than this agent; spooling to %s "
                "and replaying in order (nothing is dropped before the spool's bound)",
                len(self._queue),
                self.settings.spool_dir,
            )

    def _idle_timeout(self, now: float) -> float:
        timeout = min(0.5, max(self._hints.next_full - now, 0.01)) if self.mode == UP else 0.5
        if self.mode == DOWN:
            timeout = min(timeout, max(self._next_probe - now, 0.01))
        return timeout

    def _handle(self, items: list[Item]) -> None:
        batches = self._encode(items)
        if not batches:
            return
        spill = self.spill_at is not None and time.monotonic() >= self.spill_at
        if self.mode == UP and not spill:
            error = self._deliver(batches, replay=False)
            if error is None:
                return
            self._went_down(error)
        self._to_spool(batches)

    def _encode(self, items: list[Item]) -> list[Batch]:
        by_stream: dict[str, list[bytes]] = {}
        encode = self._encoder
        for item in items:
            try:
                stream, payload = encode(item)
            except Exception as exc:
                self._counters.add("dropped_invalid")
                log.warning("metrics producer: dropped an unencodable %s event: %s", item[0].type, exc)
                continue
            by_stream.setdefault(stream, []).append(payload)
        batches = []
        for stream, payloads in by_stream.items():
            self._seq += 1
            batches.append(Batch(self.token, self._seq, stream, payloads))
        return batches

    # -- Redis ------------------------------------------------------------------------------

    def _deliver(self, batches: list[Batch], replay: bool) -> BaseException | None:
        """Send batches in one round trip. The error when anything failed or was refused (OOM
        included): the caller keeps all of them for a retry and calls _went_down."""
        settings = self.settings
        wait = (settings.wait_replicas, settings.wait_timeout_ms)
        try:
            added, skipped = add_batches(self._connected(), batches, settings.dedup_ttl, settings.keys, wait)
        except SEND_ERRORS as exc:
            return exc
        self._counters.add("replayed" if replay else "sent", added)
        self._counters.add("deduplicated", skipped)
        return None

    def _connected(self) -> Client:
        """The client, connected (and its mode told in the log) after start or an outage."""
        if self._client is None:
            self._client = connect(self.settings)
            log.info("metrics producer: %s", describe(self._client))
        return self._client

    def _went_down(self, exc: BaseException) -> None:
        self._counters.add("send_failures")
        if not self._episode:  # once per outage: a replay refused again and again logs nothing new
            self._episode = True
            log.warning(
                "metrics producer: Redis at %s unavailable (%s: %s); spooling to %s until it is back",
                safe_url(self.settings.redis_url),
                type(exc).__name__,
                exc,
                self.settings.spool_dir,
            )
        self.mode = DOWN
        # The delay grows until a replay gets through, so an error that a ping cannot see (a
        # wrong key type, say) is retried calmly instead of in a loop.
        self._next_probe = self._backoff.failed(time.monotonic())
        if isinstance(self._client, redis.Redis):
            self._client.connection_pool.disconnect()
        # A cluster client is kept: it knows every node, the one REDIS_URL names may be the dead one.

    def _maybe_probe(self, now: float) -> None:
        if self._probe_ok:
            self._probe_ok = False
            self.mode = RECOVERING
            self._replayed_this_outage = 0
            self._adopt()
            return
        if self._probing or now < self._next_probe:
            return
        self._probing = True
        threading.Thread(target=self._probe, name="metrics-producer-probe", daemon=True).start()

    def _probe(self) -> None:
        """Off the sender thread, so a black-holed address never delays spooling."""
        try:
            check_reachable(self.settings, self._client)
            self._probe_ok = True
        except SEND_ERRORS:
            self._next_probe = self._backoff.failed(time.monotonic())
        finally:
            self._probing = False
            self._wake.set()

    def _sync_hints(self, now: float) -> None:
        try:
            self._hints.sync(self._connected(), now)
        except SEND_ERRORS as exc:
            self._went_down(exc)

    # -- spool ------------------------------------------------------------------------------

    def _to_spool(self, batches: list[Batch]) -> None:
        assert self._spool is not None
        spool = self._spool
        lost_before = spool.write_errors
        dropped = spool.append(batches)
        self._counters.add("spooled", sum(len(b.events) for b in batches))
        self._counters.add("dropped_spool_error", spool.write_errors - lost_before)
        if dropped:
            self._counters.add("dropped_oldest", dropped)
            log.warning(
                "metrics producer: spool %s full (%d bytes max): dropped the %d oldest events "
                "(%d so far); restore Redis or raise METRICS_SPOOL_MAX_BYTES",
                self.settings.spool_dir,
                spool.max_bytes,
                dropped,
                spool.dropped_oldest,
            )
        self._resolve_parked()

    def _peek(self) -> list[Batch]:
        assert self._spool is not None
        lost_before = self._spool.write_errors  # a spool directory deleted under us
        batches = self._spool.peek(self.settings.batch_size)
        self._counters.add("dropped_spool_error", self._spool.write_errors - lost_before)
        return batches

    def _replay_some(self) -> None:
        assert self._spool is not None
        batches = self._peek()
        if batches:
            error = self._deliver(batches, replay=True)
            if error is not None:
                self._went_down(error)
                return
            self._spool.commit()
            self._backoff.reset()
            self._replayed_this_outage += sum(len(b.events) for b in batches)
            # Peeking past the end lets the spool remove the directories it has replayed.
            if not self._spool.empty or self._peek():
                self._resolve_parked()
                return
        # Caught up, now: waiting for a step without new events would keep a publisher that
        # publishes steadily in recovery for ever, everything through the disk, no heartbeats.
        self.mode = UP
        self._episode = False
        self._resolve_parked()
        if self._replayed_this_outage:
            log.info(
                "metrics producer: Redis is back; replayed %d spooled events", self._replayed_this_outage
            )

    # -- flush marks ------------------------------------------------------------------------

    def _on_mark(self, mark: Mark) -> None:
        if mark.stop:
            self._stop = mark
        elif self.mode == UP:
            mark.resolve(True)
        else:  # behind events in the spool: resolved once the replay is past them
            assert self._spool is not None
            self._parked.park(mark, self._spool.appended)

    def _resolve_parked(self) -> None:
        if self._parked and self._spool is not None:
            self._parked.resolve(self.mode == UP, self._spool.consumed)

    def _finish(self) -> None:
        """Stop: release the hints of open sessions, leave the spool for the next publisher."""
        delivered = self.mode == UP
        if delivered and self._client is not None:
            with contextlib.suppress(*SEND_ERRORS):
                self._hints.release(self._client)
        if self._spool is not None:
            delivered = delivered and self._spool.empty
            self._spool.close()
        self._parked.fail_all()
        if self._client is not None:
            self._client.close()
        if self._stop is not None:
            self._stop.resolve(delivered)
