"""/v1/pipeline and ``metrics-worker status --json`` are one view: on one Redis, unsharded and
with K=2 shards, with dead letters the worker made itself (the cluster: tests/cluster/)."""

from __future__ import annotations

import subprocess
import warnings
from pathlib import Path

import pytest
import redis
from starlette.exceptions import StarletteDeprecationWarning

from contract.connect import connect
from tests.ingest.helpers import settings, wait_for
from tests.status_views import check_agreement
from tests.transport.servers import free_port
from worker.dev.cluster import redis_binary
from worker.read.api import create_app

with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient


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


def test_a_redis_that_starts_after_the_api_is_found(db_url: str, tmp_path: Path) -> None:
    """The API connects on the first read, and again after a failed one: 503 while Redis is away,
    then the view, without a restart."""
    port = free_port()
    app = create_app(db_url, tokens=[], redis_url=f"redis://127.0.0.1:{port}/0")
    with TestClient(app) as api:
        assert api.get("/v1/pipeline").status_code == 503
        server = subprocess.Popen(
            [redis_binary("redis-server"), "--port", str(port), "--save", "", "--dir", str(tmp_path)],
            stdout=subprocess.DEVNULL,
        )
        try:
            with redis.Redis(port=port) as probe:
                wait_for(lambda: _answers(probe))
            view = api.get("/v1/pipeline")
            assert view.status_code == 200 and view.json()["configured"], view.text
        finally:
            server.terminate()
            server.wait(timeout=10)


def _answers(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False
