"""Workers, dead letters, claims, trims and status on a real 3-master Redis Cluster."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time

import psycopg
import pytest
import redis
from redis.cluster import RedisCluster

from contract.codec import STREAM_FIELD
from contract.connect import Client, connect, describe, node_for, placed
from contract.keys import Keys, slot_of
from tests.cluster.helpers import publish_sharded
from tests.cluster.versions import needs_lag_counts
from tests.engine.histories import coherent_history, deliveries
from tests.engine.reference import SeedReference, database_tables
from tests.ingest.helpers import drain, log_of, settings, spawn_worker, wait_consuming, wait_for, worker_env
from worker.dev.cluster import LocalCluster
from worker.ingest.deadletter import DeadLetters
from worker.ingest.housekeeping import remove_idle_consumers, trim_acknowledged
from worker.ingest.stream import StreamClient
from worker.settings import WorkerSettings
from worker.status import read_status


def _on_cluster(
    db_url: str, cluster: LocalCluster, key_prefix: str, shards: int, **kw: object
) -> WorkerSettings:
    return settings(db_url, cluster.url, key_prefix, shards=shards, **kw)


def test_any_node_url_gives_a_cluster_client_and_a_single_redis_a_plain_one(
    cluster: LocalCluster, redis_url: str
) -> None:
    for port in cluster.used_ports:
        client = connect(f"redis://127.0.0.1:{port}/0")
        try:
            assert isinstance(client, RedisCluster)
            assert describe(client).startswith("Redis Cluster mode, 3 masters")
        finally:
            client.close()
    plain = connect(redis_url)
    try:
        assert type(plain) is redis.Redis and describe(plain).startswith("single Redis mode")
    finally:
        plain.close()


@pytest.mark.parametrize("shards", [3, 4, 6, 16])
def test_shards_spread_over_every_master(cluster_client: Client, shards: int) -> None:
    keys = placed(Keys("metrics:events", shards), cluster_client)
    per_master: dict[str, int] = {}
    for stream in keys.streams:
        node, _ = node_for(cluster_client, stream)
        per_master[node] = per_master.get(node, 0) + 1
    assert len(per_master) == 3 and max(per_master.values()) - min(per_master.values()) <= 1, per_master
    for stream in keys.streams:  # a shard's dead letters live in its slot
        assert slot_of(keys.dead_letters_for(stream)) == slot_of(stream) == cluster_client.keyslot(stream)


def test_six_shards_three_workers_one_killed_converge(
    db_url: str, cluster: LocalCluster, cluster_client: Client, key_prefix: str, conn: psycopg.Connection
) -> None:
    rng = random.Random(13)
    history = [ev for i in range(60) for ev in coherent_history(rng, sessions=3, prefix=f"h{i}-")]
    s = _on_cluster(db_url, cluster, key_prefix, 6, batch_size=20)
    keys = placed(s.keys, cluster_client)
    publish_sharded(cluster_client, keys, deliveries(rng, history))
    assert all(cluster_client.xlen(stream) > 0 for stream in keys.streams)
    procs = [spawn_worker(s, "--consumer", f"w{i}", "--claim-idle-ms", "1000") for i in range(3)]
    try:
        # every worker in its loop (its SIGTERM handler installed) before any signal below
        wait_consuming(cluster_client, keys.streams[0], s.group, "w0", "w1", "w2")
        wait_for(lambda: conn.execute("SELECT count(*) FROM session_metrics").fetchone()[0] > 0, 60)
        procs[0].send_signal(signal.SIGKILL)  # its pending entries, on any shard, are claimed
        procs[0].wait(timeout=10)
        reference = SeedReference.of(history).tables()
        wait_for(lambda: database_tables(conn) == reference, timeout=120, interval=0.5)
        wait_for(
            lambda: sum(int(cluster_client.xpending(st, s.group)["pending"]) for st in keys.streams) == 0
        )
    finally:
        for proc in procs[1:]:
            proc.send_signal(signal.SIGTERM)
        for proc in procs[1:]:
            assert proc.wait(timeout=30) == 0, log_of(proc)
    assert "Redis Cluster mode, 3 masters" in log_of(procs[1], tail=100_000)


def test_dead_letters_in_their_shards_slot_listed_redriven_and_purged(
    db_url: str, cluster: LocalCluster, cluster_client: Client, key_prefix: str, conn: psycopg.Connection
) -> None:
    needs_lag_counts(cluster)
    s = _on_cluster(db_url, cluster, key_prefix, 6, batch_size=50)
    keys = placed(s.keys, cluster_client)
    for stream in keys.streams:
        cluster_client.xadd(stream, {STREAM_FIELD: b"{not json"})
    worker = drain(s)
    assert worker.totals.dead_lettered == 6
    for stream in keys.streams:  # one letter per shard, in the shard's own dead-letter stream
        (letter,) = DeadLetters(cluster_client, keys.dead_letters_for(stream)).list()
        assert letter.stream == stream and "invalid event" in letter.reason
        assert cluster_client.xpending(stream, s.group)["pending"] == 0
    env = worker_env(s)
    listed = _cli(env, "dlq", "list", "--json")
    assert len(json.loads(listed.stdout)) == 6
    assert listed.stderr == ""  # a one-shot command: its mode line is at DEBUG
    assert "Redis Cluster mode" in _cli(env, "dlq", "list", "--json", "-v").stderr
    assert "redrove 6 dead letters" in _cli(env, "dlq", "redrive", "--all").stdout
    status = read_status(cluster_client, s.keys, s.group)
    assert [st.undelivered for st in status.streams] == [1] * 6  # back where they came from
    for stream in keys.streams:
        assert cluster_client.xrevrange(stream, count=1)[0][1] == {STREAM_FIELD.encode(): b"{not json"}
    drain(s)  # dead-lettered again, with a new reason each
    assert "purged 6 dead letters" in _cli(env, "dlq", "purge", "--all").stdout
    assert DeadLetters(cluster_client, keys.dead_letter_streams).count() == 0


def test_entries_a_dead_consumer_held_on_every_shard_are_claimed(
    db_url: str, cluster: LocalCluster, cluster_client: Client, key_prefix: str, conn: psycopg.Connection
) -> None:
    needs_lag_counts(cluster)
    rng = random.Random(17)
    history = [ev for i in range(12) for ev in coherent_history(rng, sessions=2, prefix=f"c{i}-")]
    s = _on_cluster(db_url, cluster, key_prefix, 6, batch_size=1000)
    dead = StreamClient(connect(cluster.url), s.keys, s.group, "dead")
    dead.ensure_groups()
    publish_sharded(cluster_client, dead.keys, history)
    taken = dead.read_new(1000, None)  # everything, from every shard, then it dies
    assert len(taken) == 6
    time.sleep(1.1)  # past claim_idle_ms
    drain(s)
    assert database_tables(conn) == SeedReference.of(history).tables()
    status = read_status(cluster_client, s.keys, s.group)
    assert [(st.pending, st.undelivered) for st in status.streams] == [(0, 0)] * 6


def test_trims_and_idle_consumer_removal_cover_every_shard(
    db_url: str, cluster: LocalCluster, cluster_client: Client, key_prefix: str
) -> None:
    s = _on_cluster(db_url, cluster, key_prefix, 6)
    keys = placed(s.keys, cluster_client)
    gone = StreamClient(cluster_client, s.keys, s.group, "gone")
    gone.ensure_groups()
    for stream in keys.streams:
        for _ in range(3):
            cluster_client.xadd(stream, {STREAM_FIELD: b"{}"})
    me = StreamClient(cluster_client, s.keys, s.group, "me")
    for batch in gone.read_new(10, None):
        gone.ack(batch.stream, [e[0] for e in batch.entries])
    assert trim_acknowledged(me) == 18
    assert all(cluster_client.xlen(stream) == 0 for stream in keys.streams)
    assert remove_idle_consumers(me, 0) == ["gone"] * 6


def test_status_reports_every_shard_on_every_master(
    db_url: str, cluster: LocalCluster, cluster_client: Client, key_prefix: str
) -> None:
    needs_lag_counts(cluster)
    s = _on_cluster(db_url, cluster, key_prefix, 6)
    keys = placed(s.keys, cluster_client)
    reader = StreamClient(cluster_client, s.keys, s.group, "reader")
    reader.ensure_groups()
    for i, stream in enumerate(keys.streams):
        for _ in range(i + 1):
            cluster_client.xadd(stream, {STREAM_FIELD: b"{}"})
    reader.read_new(1, None)  # one pending on each shard
    report = json.loads(_cli(worker_env(s), "status", "--json").stdout)
    assert [(r["stream"], r["length"], r["pending"], r["undelivered"]) for r in report["streams"]] == [
        (stream, i + 1, 1, i) for i, stream in enumerate(keys.streams)
    ]
    masters = {node_for(cluster_client, r["stream"])[0] for r in report["streams"]}
    assert len(masters) == 3


def test_reads_cost_one_round_trip_per_master_and_no_command_getkeys(
    cluster: LocalCluster, cluster_client: Client, key_prefix: str
) -> None:
    """redis-py's RedisCluster asks the server for the keys of an XREADGROUP (COMMAND GETKEYS)
    before sending it; the worker sends its reads to each stream's master itself."""
    keys = Keys(f"{key_prefix}:events", 6)
    reader = StreamClient(cluster_client, keys, "g", "c")
    reader.ensure_groups()
    before = _getkeys_calls(cluster)
    for _ in range(20):
        assert reader.read_new(10, None) == []
    assert _getkeys_calls(cluster) == before
    (done,) = _commandstats(cluster, "xreadgroup")
    assert done >= 120  # 20 sweeps x 6 shards


def _commandstats(cluster: LocalCluster, *names: str) -> list[int]:
    totals = dict.fromkeys(names, 0)
    for port in cluster.master_ports():
        with redis.Redis(port=port) as node:
            stats = node.info("commandstats")
            for name in names:
                totals[name] += int(stats.get(f"cmdstat_{name}", {}).get("calls", 0))
    return list(totals.values())


def _getkeys_calls(cluster: LocalCluster) -> int:
    return _commandstats(cluster, "command|getkeys")[0]


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "worker.cli", *args], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done
