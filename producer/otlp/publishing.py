"""The receiver's one way into Redis: a thread that publishes requests' events in order through
the producer's delivery code (producer/delivery.py), and says when Redis cannot take more.

Why one thread: every batch carries (token, seq) and the delivery script skips a batch whose seq
is not above the (token, stream) marker. Two requests sending concurrently under one token could
reach Redis out of seq order, and the later seq would make the earlier batch look like a replay:
dropped in silence. So requests hand their events to this thread, which numbers them and sends
them in order, several requests in one round trip when they queue up, and answers each request's
future only once Redis has its events. A failed send may have been applied (a timeout after the
script ran): it is retried with the same (token, seq) until ``publish_timeout``, so it lands once;
after that the requests are answered 503 and the client re-sends, which the workers' dedupe on
the events' deterministic ids absorbs.

The thread also keeps two facts for admission, read by the event loop without a lock: whether
Redis answers (after a failed send, a probe with backoff until it does) and the backlog, the
entries the workers' group has not finished with (lag + pending on every shard, XLEN where no group
exists yet: contract/backlog.py, the reading metrics-worker status shows), measured about once a
second.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
import uuid
from concurrent.futures import Future
from dataclasses import dataclass, field

import redis

from contract.backlog import read_backlog
from contract.backoff import Backoff
from contract.connect import Client, describe, is_cluster, placed, refresh
from producer.delivery import SEND_ERRORS, Batch, add_batches, check_reachable, connect, safe_url
from producer.otlp.settings import OtlpSettings

log = logging.getLogger(__name__)

#: Events sent in one round trip at most when requests queue up (one request is never split).
COALESCE_EVENTS = 8192
#: How often the backlog is measured (s).
BACKLOG_EVERY = 1.0


class Unavailable(Exception):
    """Redis did not take the events within publish_timeout: answered 503, the client retries."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass
class Job:
    """One request's events, by stream, and the future its handler awaits (the events added)."""

    by_stream: dict[str, list[bytes]]
    count: int
    future: Future[int] = field(default_factory=Future)


class Publishing:
    """Owns the Redis client, the token and the sequence; runs :meth:`_run` on its own thread."""

    def __init__(self, settings: OtlpSettings) -> None:
        self.settings = settings
        self.token = uuid.uuid4().hex  # a new token per process: its sequence starts at 1
        self.redis_up = True  # until a send or a probe says otherwise
        self.backlog = 0
        self._seq = 0
        self._queue: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._client: Client | None = None
        self._backoff = Backoff(0.1, 2.0)
        self._next_probe = 0.0
        self._backlog_at = -math.inf
        self._backlog_refused = False
        self._thread = threading.Thread(target=self._run, name="metrics-otlp-publisher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Publish what was submitted, then end the thread."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout)
        if self._client is not None:
            self._client.close()

    def submit(self, by_stream: dict[str, list[bytes]], count: int) -> Future[int]:
        job = Job(by_stream, count)
        self._queue.put(job)
        return job.future

    @property
    def retry_after(self) -> int:
        """Seconds until the next probe of a Redis that went away (at least 1)."""
        return max(1, math.ceil(self._next_probe - time.monotonic()))

    # -- the thread --------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            try:
                job = self._queue.get(timeout=0.2)
            except queue.Empty:
                job = None
                stopping = False
            else:
                stopping = job is None
            try:
                if job is not None:
                    self._publish(self._coalesce(job))
                self._maintain()
            except Exception:  # never die: the receiver would accept and never answer
                log.exception("metrics-otlp: publisher step failed; continuing")
            if stopping:
                return

    def _coalesce(self, first: Job) -> list[Job]:
        jobs, count = [first], first.count
        while count < COALESCE_EVENTS:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                break
            if job is None:  # stop: after these
                self._queue.put(None)
                break
            jobs.append(job)
            count += job.count
        return jobs

    def _maintain(self) -> None:
        now = time.monotonic()
        if not self.redis_up and now >= self._next_probe:
            self._probe()
        elif self.redis_up and now - self._backlog_at >= BACKLOG_EVERY:
            self._backlog_at = now
            try:
                self.backlog = self._measure_backlog(self._connected())
            except SEND_ERRORS as exc:
                self._went_down(exc)

    def _publish(self, jobs: list[Job]) -> None:
        merged: dict[str, list[bytes]] = {}
        for job in jobs:
            for stream, events in job.by_stream.items():
                merged.setdefault(stream, []).extend(events)
        batches = []
        for stream, events in merged.items():
            self._seq += 1
            batches.append(Batch(self.token, self._seq, stream, events))
        deadline = time.monotonic() + self.settings.publish_timeout
        producer = self.settings.producer
        wait = (producer.wait_replicas, producer.wait_timeout_ms)
        backoff = Backoff(0.05, 0.5)
        while True:
            try:
                if batches:  # an empty request still waits its turn, then succeeds
                    add_batches(self._connected(), batches, producer.dedup_ttl, producer.keys, wait)
                break
            except SEND_ERRORS as exc:
                # Maybe applied (a reply lost): the retry carries the same (token, seq), so it
                # is skipped where it got through and applied where it did not.
                now = time.monotonic()
                self._went_down(exc)
                if now >= deadline:
                    error = Unavailable(
                        f"Redis did not take the events: {type(exc).__name__}: {exc}", self.retry_after
                    )
                    for job in jobs:
                        job.future.set_exception(error)
                    return
                time.sleep(max(0.0, min(backoff.failed(now), deadline) - now))
        if not self.redis_up:
            log.info("metrics-otlp: Redis at %s is back", safe_url(producer.redis_url))
        self.redis_up = True
        self._backoff.reset()
        for job in jobs:
            job.future.set_result(job.count)

    def _connected(self) -> Client:
        if self._client is None:
            self._client = connect(self.settings.producer)
            log.info("metrics-otlp: publishing to %s", describe(self._client))
        elif is_cluster(self._client) and not self.redis_up:
            refresh(self._client)  # a failover moved slots, or a node came back
        return self._client

    def _went_down(self, exc: BaseException) -> None:
        if self.redis_up:
            log.warning(
                "metrics-otlp: Redis at %s unavailable (%s: %s); answering 503 until it is back",
                safe_url(self.settings.producer.redis_url),
                type(exc).__name__,
                exc,
            )
        self.redis_up = False
        self._next_probe = self._backoff.failed(time.monotonic())
        if isinstance(self._client, redis.Redis):
            self._client.connection_pool.disconnect()

    def _probe(self) -> None:
        try:
            check_reachable(self.settings.producer, self._client)
            if self._client is not None and is_cluster(self._client):
                refresh(self._client)
            self.backlog = self._measure_backlog(self._connected())
        except SEND_ERRORS:
            self._next_probe = self._backoff.failed(time.monotonic())
            return
        self._backlog_at = time.monotonic()
        self._backoff.reset()
        self.redis_up = True
        log.info("metrics-otlp: Redis at %s answers again", safe_url(self.settings.producer.redis_url))

    def _measure_backlog(self, client: Client) -> int:
        """Entries the group has not finished with, summed over the shards: undelivered + pending
        as contract.backlog.read_backlog defines them (the whole stream where no group exists
        yet); an uncounted "some" (Redis < 7) counts 0. 0 when Redis refuses the reading (a user
        without XINFO or XLEN): the bound is then not enforced, said once."""
        streams = placed(self.settings.producer.keys, client).streams
        try:
            found = read_backlog(client, streams, self.settings.group)
        except redis.ResponseError as exc:
            if not self._backlog_refused:
                log.warning("metrics-otlp: cannot read the backlog (%s); --max-backlog is not enforced", exc)
            self._backlog_refused = True
            return 0
        self._backlog_refused = False
        return sum((s.undelivered or 0) + s.pending for s in found)
