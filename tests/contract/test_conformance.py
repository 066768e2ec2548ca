"""contract/conformance.json: what the generator writes, what the producer and the worker do, and
what a second implementation written from the documented rules alone computes.

The second implementation (``_Documented``) uses none of the project's functions: CRC-32 from
zlib, from binascii and bit by bit from the polynomial, CRC16/XMODEM bit by bit, the cluster tag
and key name rules as contract/routing.py and contract/liveness.py state them in prose.
"""

from __future__ import annotations

import binascii
import json
import zlib
from typing import Any

import pytest
import redis

from contract import decode
from contract.conformance import CONFORMANCE_FILE, ROUTED_SHARDS, TAGGED_SHARDS, render
from contract.keys import Keys
from producer import ProducerSettings, wire
from worker.ingest.stream import StreamClient

DOC: dict[str, Any] = json.loads(CONFORMANCE_FILE.read_text(encoding="ascii"))
ROUTES: dict[str, list[int]] = {case["id"]: case["shard"] for case in DOC["routing"]}


class _Documented:
    """The rules of the README's "The wire contract", implemented again from the text."""

    @staticmethod
    def crc32_bitwise(data: bytes) -> int:
        crc = 0xFFFFFFFF
        for byte in data:
            crc ^= byte
            for _ in range(8):
                crc = (crc >> 1) ^ 0xEDB88320 if crc & 1 else crc >> 1
        return crc ^ 0xFFFFFFFF

    @staticmethod
    def crc16_xmodem(data: bytes) -> int:
        crc = 0
        for byte in data:
            crc ^= byte << 8
            for _ in range(8):
                crc = ((crc << 1) ^ 0x1021) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
        return crc

    @classmethod
    def shard(cls, routing_id: str, k: int) -> int:
        data = routing_id.encode("utf-8")
        by_zlib, by_binascii, by_hand = zlib.crc32(data), binascii.crc32(data), cls.crc32_bitwise(data)
        assert by_zlib == by_binascii == by_hand, routing_id
        return by_zlib % k

    @classmethod
    def tag(cls, i: int, k: int) -> str:
        candidate, n = str(i), 0
        while (
            not 4096 * (4 * i + 1) <= k * (cls.crc16_xmodem(candidate.encode()) % 16384) < 4096 * (4 * i + 3)
        ):
            n += 1
            candidate = f"{i}.{n}"
        return candidate

    @classmethod
    def streams(cls, stream: str, k: int, cluster: bool) -> list[str]:
        if k == 1:
            return [stream]
        return [f"{stream}:{{{cls.tag(i, k) if cluster else i}}}" for i in range(k)]

    @staticmethod
    def dead_letters(stream: str, shard_stream: str, k: int, cluster: bool) -> str:
        if k > 1:
            return f"{shard_stream}:dead"
        return f"{stream}:dead:{{{stream}}}" if cluster else f"{stream}:dead"

    @staticmethod
    def routing_id(event: dict[str, Any]) -> str:
        family = event["type"].split(".")[0]
        return event["forward_id" if family == "forward" else "reason" if family == "sync" else "session_id"]


def test_the_committed_file_is_what_the_generator_writes() -> None:
    assert CONFORMANCE_FILE.read_text(encoding="ascii") == render(), (
        "python -m contract.conformance > contract/conformance.json"
    )


def test_the_ids_exercise_every_shard_signed_arithmetic_and_unicode_forms() -> None:
    for k in range(2, ROUTED_SHARDS + 1):
        assert {shards[k - 1] for shards in ROUTES.values()} == set(range(k)), k
    assert any(case["crc32"] >= 2**31 for case in DOC["routing"])
    assert any(max(len(c.encode()) for c in rid) == 4 for rid in ROUTES)  # beyond UTF-16's one unit
    nfc, nfd = "sess\u00e3o-1", "sessa\u0303o-1"
    assert ROUTES[nfc] != ROUTES[nfd]  # one text in two normal forms: two ids, routed apart
    assert sorted(DOC["cluster_tags"], key=int) == [str(k) for k in range(2, TAGGED_SHARDS + 1)]


def test_a_second_implementation_from_the_documented_rule_agrees() -> None:
    crc32, crc16 = DOC["check_values"]["crc32"], DOC["check_values"]["crc16_xmodem"]
    assert _Documented.crc32_bitwise(crc32["input"].encode()) == crc32["value"] == 0xCBF43926
    assert _Documented.crc16_xmodem(crc16["input"].encode()) == crc16["value"] == 0x31C3
    for case in DOC["routing"]:
        rid = case["id"]
        assert bytes.fromhex(case["utf8"]).decode("utf-8") == rid
        assert case["crc32"] == zlib.crc32(rid.encode("utf-8"))
        assert case["shard"] == [_Documented.shard(rid, k) for k in range(1, ROUTED_SHARDS + 1)], rid
    for k, tags in DOC["cluster_tags"].items():
        assert tags == [_Documented.tag(i, int(k)) for i in range(int(k))], k
    for example in DOC["events"]:
        event = example["event"]
        assert example["routing_id"] == _Documented.routing_id(event)
    for d in DOC["deployments"]:
        stream, k, cluster = d["stream"], d["shards"], d["cluster"]
        assert d["streams"] == _Documented.streams(stream, k, cluster)
        assert d["dead_letters"] == [_Documented.dead_letters(stream, s, k, cluster) for s in d["streams"]]
        assert (d["heartbeats"], d["awaiting"]) == (f"{stream}:hints:active", f"{stream}:hints:awaiting")
        if cluster and k > 1:  # the tags listed apart are the ones the names use
            assert d["streams"] == [f"{stream}:{{{tag}}}" for tag in DOC["cluster_tags"][str(k)]]


def test_the_project_keys_route_and_name_as_the_file_says() -> None:
    for rid, shards in ROUTES.items():
        for k in range(1, ROUTED_SHARDS + 1):
            for cluster in (False, True):
                keys = Keys(stream="metrics:events", shards=k, cluster=cluster)
                assert keys.stream_for(rid) == keys.streams[shards[k - 1]], (rid, k)
    for d in DOC["deployments"]:
        keys = Keys(stream=d["stream"], shards=d["shards"], cluster=d["cluster"])
        assert keys.streams == d["streams"]
        assert [keys.dead_letters_for(s) for s in keys.streams] == d["dead_letters"]
        assert (keys.active_sessions, keys.awaiting_sessions) == (d["heartbeats"], d["awaiting"])


@pytest.mark.parametrize("k", [1, 2, 3, 5, 16])
def test_the_producer_routes_every_event_type_as_the_file_says(k: int) -> None:
    """Both of the producer's paths: the typed calls' wire types and a ready-made event."""
    keys = Keys(stream="metrics:events", shards=k)
    encoder = wire.Encoder(keys)
    by_type = {w.type: w for w in wire.WIRE_TYPES}
    types = sorted(e["event"]["type"] for e in DOC["events"])
    assert sorted(by_type) == sorted(DOC["routing_fields"]) == types
    for example in DOC["events"]:
        event = decode(json.dumps(example["event"]).encode())
        expected = keys.streams[ROUTES[example["routing_id"]][k - 1]]
        assert encoder((wire.PREBUILT, 0, None, None, event))[0] == expected, event.type
        w = by_type[event.type]
        values = [getattr(event, name) for name in w.fields]
        values = [tuple(v.model_dump().values()) if hasattr(v, "model_dump") else v for v in values]
        stream, text = encoder((w, 0, event.event_id, event.occurred_at, *values))
        assert stream == expected, event.type
        assert decode(text) == event  # the typed path wrote the same event


@pytest.mark.parametrize("k", [1, 3, 16])
def test_the_worker_reads_the_streams_the_file_names(k: int) -> None:
    """On one Redis (the cluster's names: tests/cluster and the Node.js example's test)."""
    wanted = ("metrics:events", k, False)
    (d,) = (d for d in DOC["deployments"] if (d["stream"], d["shards"], d["cluster"]) == wanted)
    client = redis.Redis()  # never connected: the shard list needs none
    try:
        assert StreamClient(client, Keys(shards=k), "group", "consumer").streams == d["streams"]
    finally:
        client.close()


def test_the_liveness_values_are_the_python_producer_s() -> None:
    defaults = ProducerSettings()
    assert DOC["liveness"]["heartbeat_interval_s"] == defaults.heartbeat_interval
    assert DOC["liveness"]["heartbeat_ttl_s"] == defaults.heartbeat_ttl
    assert (defaults.keys.active_sessions, defaults.keys.awaiting_sessions) == (
        "metrics:events:hints:active",
        "metrics:events:hints:awaiting",
    )
