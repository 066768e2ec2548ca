"""contract/backlog.py on a real Redis: the one reading of a group's backlog (undelivered + pending)
that the worker's status view and the OTLP receiver's admission bound share, on one stream and on
K shards (tests/cluster/test_status_cluster.py: on a Redis Cluster)."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from contract.backlog import read_backlog
from contract.keys import Keys
from tests.contract.backlogs import GROUP, as_redis_says, check_readers_agree, fill, lag_counted


@pytest.mark.parametrize("shards", [1, 3])
def test_undelivered_and_pending_per_stream_as_redis_counts_them(
    redis_client: redis.Redis, redis_url: str, key_prefix: str, shards: int, tmp_path: Path
) -> None:
    keys = Keys(f"{key_prefix}:events", shards=shards)
    expected = fill(redis_client, keys)
    assert as_redis_says(redis_client, keys) == expected  # the setup did what it says
    found = read_backlog(redis_client, keys.streams, GROUP)
    assert [s.stream for s in found] == keys.streams
    counted = lag_counted(redis_client, keys)  # before Redis 7: "some" (None)
    assert [(s.length, s.undelivered, s.pending, s.backlog) for s in found] == [
        (n, u, p, u + p) if counted else (n, None, p, None) for n, u, p in expected
    ]
    check_readers_agree(redis_client, keys, redis_url, tmp_path)


def test_without_the_group_the_whole_stream_waits_and_without_the_stream_nothing(
    redis_client: redis.Redis, key_prefix: str
) -> None:
    unread, missing = f"{key_prefix}:unread", f"{key_prefix}:missing"
    for n in range(4):
        redis_client.xadd(unread, {"n": n})
    redis_client.xgroup_create(unread, "others", id="$")
    found = read_backlog(redis_client, [unread, missing], GROUP)
    assert [(s.length, s.group, s.undelivered, s.pending, s.backlog) for s in found] == [
        (4, None, 4, 0, 4),
        (0, None, 0, 0, 0),
    ]


def test_an_undelivered_count_redis_lost_is_none_until_the_group_catches_up(
    redis_client: redis.Redis, key_prefix: str
) -> None:
    """Deleting an undelivered entry makes Redis 7's lag nil (before 7 there is none): "some";
    once the group was delivered the last entry, none (Redis 7's lag, or the ids compared)."""
    stream = f"{key_prefix}:events"
    ids = [redis_client.xadd(stream, {"n": n}) for n in range(5)]
    redis_client.xgroup_create(stream, GROUP, id="0")
    redis_client.xreadgroup(GROUP, "w", {stream: ">"}, count=2)
    redis_client.xdel(stream, ids[3])
    (found,) = read_backlog(redis_client, [stream], GROUP)
    assert (found.undelivered, found.pending, found.backlog) == (None, 2, None)
    redis_client.xreadgroup(GROUP, "w", {stream: ">"})
    (found,) = read_backlog(redis_client, [stream], GROUP)
    assert (found.undelivered, found.pending, found.backlog) == (0, 4, 4)


def test_a_refused_read_is_an_error_not_an_empty_backlog(redis_client: redis.Redis, key_prefix: str) -> None:
    """A key of another type under a stream's name: Redis refuses, the reader says so."""
    redis_client.set(f"{key_prefix}:events", "not a stream")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        read_backlog(redis_client, [f"{key_prefix}:events"], GROUP)
