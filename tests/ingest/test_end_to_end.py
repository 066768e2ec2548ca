"""Through the stream: duplicates and shuffled deliveries converge; several workers share the work."""

from __future__ import annotations

import random
import threading

import psycopg
import redis
from prometheus_client import REGISTRY

from contract.codec import STREAM_FIELD
from contract.routing import routing_id
from tests.engine.histories import coherent_history, deliveries
from tests.engine.reference import SeedReference, database_tables
from tests.ingest.helpers import drain, publish, settings
from worker.ingest.consumer import Worker
from worker.ingest.observer import Finished


def test_shuffled_duplicated_stream_drains_to_the_in_order_result(
    db_url: str, redis_url: str, key_prefix: str, redis_client: redis.Redis, conn: psycopg.Connection
) -> None:
    rng = random.Random(3)
    history = [ev for i in range(20) for ev in coherent_history(rng, sessions=3, prefix=f"h{i}-")]
    s = settings(db_url, redis_url, key_prefix, batch_size=50)
    publish(redis_client, s.stream, deliveries(rng, history))
    worker = drain(s)
    assert database_tables(conn) == SeedReference.of(history).tables()
    assert worker.totals.dead_lettered == 0
    assert redis_client.xpending(s.stream, s.group)["pending"] == 0


def test_three_workers_in_one_group_apply_concurrently(
    db_url: str, redis_url: str, key_prefix: str, redis_client: redis.Redis, conn: psycopg.Connection
) -> None:
    rng = random.Random(5)
    history = [ev for i in range(40) for ev in coherent_history(rng, sessions=3, prefix=f"h{i}-")]
    s = settings(db_url, redis_url, key_prefix, batch_size=40)
    publish(redis_client, s.stream, deliveries(rng, history))
    workers = [Worker(s.with_(consumer=f"w{i}"), handle_signals=False) for i in range(3)]
    threads = [threading.Thread(target=w.run, kwargs={"burst": True}) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert all(w.totals.batches > 0 for w in workers), [w.totals for w in workers]
    assert database_tables(conn) == SeedReference.of(history).tables()


def test_one_worker_consumes_every_shard_fairly(
    db_url: str, redis_url: str, key_prefix: str, redis_client: redis.Redis, conn: psycopg.Connection
) -> None:
    rng = random.Random(11)
    history = [ev for i in range(15) for ev in coherent_history(rng, sessions=2, prefix=f"h{i}-")]
    s = settings(db_url, redis_url, key_prefix, shards=4, batch_size=10)
    for ev in deliveries(rng, history):
        publish(redis_client, s.keys.stream_for(routing_id(ev)), [ev])
    assert all(redis_client.xlen(stream) > 0 for stream in s.keys.streams)
    drain(s)
    assert database_tables(conn) == SeedReference.of(history).tables()


class _Recorder:
    """An Observer (worker/ingest/observer.py) that keeps what it is told."""

    def __init__(self) -> None:
        self.batches: list[Finished] = []
        self.backlogs: list[tuple[str, int, int]] = []

    def finished(self, batch: Finished) -> None:
        self.batches.append(batch)

    def retrying(self, kind: str) -> None:
        raise AssertionError(f"no retry expected ({kind})")

    def backlog(self, stream: str, undelivered: int, pending: int) -> None:
        self.backlogs.append((stream, undelivered, pending))


def test_an_observer_hears_every_batch_and_prometheus_counts_them(
    db_url: str, redis_url: str, key_prefix: str, redis_client: redis.Redis
) -> None:
    """Metrics are an observer of the Worker, not part of its loop: a recorder sees what the
    default Prometheus observer counts (applied by type, dead letters by reason, batch sizes)."""
    rng = random.Random(8)
    history = coherent_history(rng, sessions=2, prefix="obs-")
    s = settings(db_url, redis_url, key_prefix, batch_size=1000, trim_every_s=0.0)
    publish(redis_client, s.stream, history)
    redis_client.xadd(s.stream, {STREAM_FIELD: b"not json"})
    recorder = _Recorder()
    assert Worker(s, handle_signals=False, observer=recorder).run(burst=True) == 0
    (batch,) = recorder.batches
    assert (batch.stream, batch.entries, len(batch.applied)) == (s.stream, len(history) + 1, len(history))
    assert [letter.reason.split(":")[0] for letter in batch.letters] == ["invalid event"]
    assert batch.seconds > 0 and recorder.backlogs and recorder.backlogs[0][0] == s.stream

    before = REGISTRY.get_sample_value("metrics_worker_dead_lettered_total", {"reason": "invalid event"}) or 0
    redis_client.xadd(s.stream, {STREAM_FIELD: b"still not json"})
    drain(s)  # the default observer: Prometheus
    after = REGISTRY.get_sample_value("metrics_worker_dead_lettered_total", {"reason": "invalid event"})
    assert after == before + 1
