"""Integration: after os.fork() the child publishes through its own sender; nothing is sent twice."""

from __future__ import annotations

import multiprocessing
import os
from collections import Counter

import pytest
import redis

from producer import Publisher
from tests.producer.conftest import read_stream

pytestmark = pytest.mark.filterwarnings("ignore:.*multi-threaded.*fork:DeprecationWarning")


def test_a_forked_child_gets_its_own_sender(
    publisher: Publisher, redis_client: redis.Redis, stream: str
) -> None:
    for i in range(5_000):  # some still queued in the parent at the fork
        publisher.sync_mismatch(f"parent-before {i}")
    pid = os.fork()
    if pid == 0:  # the child: publish, flush, leave without running the parent's test teardown
        code = 1
        try:
            for i in range(1_000):
                publisher.sync_mismatch(f"child {i}")
            code = 0 if publisher.flush(10) and _delivered(publisher) == 1_000 else 2
        finally:
            os._exit(code)
    for i in range(1_000):
        publisher.sync_mismatch(f"parent-after {i}")
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert publisher.flush(10)
    reasons = [event.reason for event in read_stream(redis_client, stream)]  # type: ignore[union-attr]
    assert len(reasons) == len(set(reasons)) == 7_000
    assert Counter(r.split()[0] for r in reasons) == {
        "parent-before": 5_000,
        "child": 1_000,
        "parent-after": 1_000,
    }
    assert _delivered(publisher) == 6_000  # sent, or through the spool when a burst outran Redis


_shared: Publisher | None = None


def _child() -> None:
    assert _shared is not None
    for i in range(500):
        _shared.sync_mismatch(f"process {os.getpid()} {i}")
    # no flush: the publisher closes itself when a multiprocessing child exits


def test_multiprocessing_children_deliver_without_an_explicit_flush(
    publisher: Publisher, redis_client: redis.Redis, stream: str
) -> None:
    global _shared
    _shared = publisher
    publisher.sync_mismatch("parent")
    context = multiprocessing.get_context("fork")
    children = [context.Process(target=_child) for _ in range(2)]
    for child in children:
        child.start()
    for child in children:
        child.join(30)
        assert child.exitcode == 0
    assert redis_client.xlen(stream) == 1_001


def _delivered(publisher: Publisher) -> int:
    stats = publisher.stats()
    return int(stats["sent"] + stats["replayed"])
