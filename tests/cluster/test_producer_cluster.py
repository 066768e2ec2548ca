"""The producer on a real cluster: shards spread over masters, the whole cluster stopped and
started (spool, then replay), WAIT before a batch leaves the spool, and the failover drill."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from bench.cluster_drill import failover_drill
from contract.codec import STREAM_FIELD, decode
from contract.connect import Client, connect, placed
from contract.keys import Keys
from producer import Publisher
from tests.producer.conftest import quick_settings
from tests.producer.helpers import event_calls, publish
from worker.dev.cluster import LocalCluster, start_cluster


def _events(client: Client, keys: Keys) -> dict[str, list[str]]:
    """Event ids per shard, in stream order."""
    return {
        stream: [decode(f[STREAM_FIELD.encode()]).event_id for _, f in client.xrange(stream)]
        for stream in placed(keys, client).streams
    }


def test_a_publisher_spreads_its_shards_over_the_masters_and_says_it_is_on_a_cluster(
    cluster: LocalCluster,
    cluster_client: Client,
    key_prefix: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="producer.sender")
    settings = quick_settings(
        redis_url=cluster.url, stream=f"{key_prefix}:events", shards=6, spool_dir=tmp_path
    )
    pub = Publisher(settings)
    publish(pub, event_calls(1200, seed=5))
    assert pub.close(30)
    per_shard = _events(cluster_client, settings.keys)
    ids = [i for shard in per_shard.values() for i in shard]
    assert len(ids) == len(set(ids)) == 1200 and all(per_shard.values())
    assert pub.stats()["spooled"] == 0
    assert any("Redis Cluster mode, 3 masters" in r.getMessage() for r in caplog.records)


@pytest.mark.drill
def test_the_whole_cluster_stopped_then_started_loses_nothing(tmp_path: Path) -> None:
    """Redis away from the publisher's start (it cannot even tell a cluster yet): spooled; the
    cluster back (every node restarted, no persistence, so empty): replayed, once each."""
    own = start_cluster(tmp_path / "cluster")
    try:
        settings = quick_settings(
            redis_url=own.url, stream="outage:events", shards=3, spool_dir=tmp_path / "spool"
        )
        own.stop()
        pub = Publisher(settings)
        try:
            publish(pub, event_calls(1500, seed=7))
            assert not pub.flush(0.5)  # nowhere to go
            own.restart()
            assert pub.flush(60)
            stats = pub.stats()
            # A batch whose reply was lost while the nodes came back is sent again and found
            # already added (deduplicated): once each either way.
            assert stats["spooled"] == 1500, stats
            assert stats["replayed"] + stats["deduplicated"] == 1500, stats
            client = connect(own.url)
            try:
                ids = [i for shard in _events(client, settings.keys).values() for i in shard]
            finally:
                client.close()
            assert len(ids) == len(set(ids)) == 1500
        finally:
            pub.close(5)  # its sender thread must not outlive the test (its backoff draws random)
    finally:
        own.stop()


def test_with_wait_replicas_a_batch_no_replica_confirmed_stays_in_the_spool(
    redis_url: str, redis_client: object, key_prefix: str, tmp_path: Path
) -> None:
    """One Redis with no replica: WAIT never confirms, so the batches stay spooled (and their
    replays are skipped by the sequence markers: each event is in the stream once)."""
    stream = f"{key_prefix}:events"
    settings = quick_settings(
        redis_url=redis_url, stream=stream, spool_dir=tmp_path, wait_replicas=1, wait_timeout_ms=20
    )
    pub = Publisher(settings)
    publish(pub, event_calls(300, seed=9))
    assert not pub.flush(1.5)
    stats = pub.stats()
    assert stats["send_failures"] >= 2 and stats["spool_events"] > 0, stats
    client = connect(redis_url)
    try:
        ids = [i for shard in _events(client, Keys(stream)).values() for i in shard]
    finally:
        client.close()
    assert len(ids) == len(set(ids)) == 300  # the replays of what WAIT did not confirm: skipped
    pub.close(0.5)


@pytest.mark.drill
def test_failover_under_load_with_wait_loses_nothing_and_everyone_carries_on(
    tmp_path: Path, db_url: str
) -> None:
    """SIGKILL of the master holding the first shard (the node REDIS_URL names) while a producer
    publishes 1,500 events/s and two workers apply them: its replica takes over; the producer
    spools and replays, the workers reconnect, nothing is lost (the producer waits for WAIT)."""
    result = failover_drill(
        tmp_path, wait_replicas=1, events=3000, rate=1500, database_url=db_url.split("?", 1)[0]
    )
    assert result["delivered"] and result["send_failures"] >= 1 and result["spooled"] > 0, result
    assert (result["published"], result["applied"], result["lost"]) == (3000, 3000, 0), result
