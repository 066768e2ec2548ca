"""A group with pending and undelivered entries on every stream of a keyring, and the check that
contract/backlog.py, the worker's status view, its drain check and the OTLP receiver's admission
bound all report it as Redis's own replies do (for tests/contract and tests/cluster)."""

from __future__ import annotations

from pathlib import Path

from contract.backlog import read_backlog
from contract.connect import Client, node_for, placed
from contract.entries import parse_id
from contract.keys import Keys
from producer.otlp.publishing import Publishing
from producer.otlp.settings import OtlpSettings
from producer.settings import ProducerSettings
from worker.ingest.stream import StreamClient
from worker.status import read_status

GROUP = "workers"


def fill(client: Client, keys: Keys) -> list[tuple[int, int, int]]:
    """On stream i of ``keys`` (placed): 6 + 4i entries, 1 + 2i delivered to GROUP, i of those
    acknowledged, so no two numbers agree by chance; another group reads them all. Returns each
    stream's (length, undelivered, pending) by that arithmetic."""
    expected = []
    for i, stream in enumerate(placed(keys, client).streams):
        _, node = node_for(client, stream)
        for n in range(6 + 4 * i):
            node.xadd(stream, {"n": n})
        node.xgroup_create(stream, GROUP, id="0")
        node.xgroup_create(stream, "others", id="0")
        node.xreadgroup("others", "o", {stream: ">"})
        ((_, delivered),) = node.xreadgroup(GROUP, "w", {stream: ">"}, count=1 + 2 * i)
        if i:
            node.xack(stream, GROUP, *[entry_id for entry_id, _ in delivered[:i]])
        expected.append((6 + 4 * i, 6 + 4 * i - (1 + 2 * i), 1 + 2 * i - i))
    return expected


def lag_counted(client: Client, keys: Keys) -> bool:
    """Whether the Redis holding ``keys`` counts undelivered entries (7 and later: the group's
    lag); before 7 the reading says "some" (None) while any wait."""
    _, node = node_for(client, placed(keys, client).streams[0])
    return int(str(node.info("server")["redis_version"]).split(".")[0]) >= 7


def as_redis_says(client: Client, keys: Keys) -> list[tuple[int, int, int]]:
    """Each stream's (length, undelivered, pending) counted from the entries themselves: those
    after the group's last delivered id, and XPENDING's count."""
    counts = []
    for stream in placed(keys, client).streams:
        _, node = node_for(client, stream)
        (info,) = [g for g in node.xinfo_groups(stream) if g["name"] == GROUP.encode()]
        last = parse_id(info["last-delivered-id"])
        after = [entry_id for entry_id, _ in node.xrange(stream) if parse_id(entry_id) > last]
        counts.append((node.xlen(stream), len(after), node.xpending(stream, GROUP)["pending"]))
    return counts


def check_readers_agree(client: Client, keys: Keys, url: str, tmp_path: Path) -> None:
    """contract.backlog, ``metrics-worker status``, the worker's drain check and gauges, and the
    OTLP receiver's backlog give the same numbers, those Redis's own replies give."""
    truth = as_redis_says(client, keys)
    counted = lag_counted(client, keys)
    reported = [(n, u if counted else None, p) for n, u, p in truth]  # every stream has some
    found = read_backlog(client, placed(keys, client).streams, GROUP)
    assert [(s.length, s.undelivered, s.pending) for s in found] == reported
    assert [s.backlog for s in found] == [u + p if counted else None for _, u, p in truth]
    view = read_status(client, keys, GROUP)
    assert [(s.length, s.undelivered, s.pending) for s in view.streams] == reported
    worker = StreamClient(client, keys, GROUP, "reader")  # "some" counts 1 for the drain check
    assert worker.backlog() == (sum(u if counted else 1 for _, u, _ in truth), sum(p for *_, p in truth))
    assert list(worker.report_lag().values()) == [(u if counted else 0, p) for _, u, p in truth]
    producer = ProducerSettings(redis_url=url, stream=keys.stream, shards=keys.shards, spool_dir=tmp_path)
    receiver = Publishing(OtlpSettings(producer=producer, group=GROUP))  # "some" counts 0
    assert receiver._measure_backlog(client) == sum((u if counted else 0) + p for _, u, p in truth)
