"""/v1/pipeline and ``metrics-worker status --json`` are one view: on one Redis, unsharded and
with K=2 shards, with dead letters the worker made itself (the cluster: tests/cluster/)."""

from __future__ import annotations

import pytest
import redis

from contract.connect import connect
from tests.ingest.helpers import settings
from tests.status_views import check_agreement


@pytest.mark.parametrize("shards", [1, 2])
def test_the_api_and_the_status_command_agree(
    db_url: str,
    redis_url: str,
    key_prefix: str,
    redis_client: redis.Redis,
    shards: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    s = settings(db_url, redis_url, key_prefix, shards=shards)
    client = connect(redis_url)
    try:
        check_agreement(s, client, monkeypatch)
    finally:
        client.close()
