"""/v1/pipeline and ``metrics-worker status --json`` are one view: on one Redis, unsharded and
with K=2 shards, with dead letters the worker made itself (the cluster: tests/cluster/)."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import psycopg
import pytest
import redis
from starlette.exceptions import StarletteDeprecationWarning

from contract.codec import STREAM_FIELD
from contract.connect import connect
from tests.ingest.helpers import settings, wait_for, worker_env
from tests.status_views import both_views, check_agreement, good
from tests.transport.servers import free_port
from worker.dev.cluster import redis_binary
from worker.read.api import create_app
from worker.status import PipelineStatus, applied_per_second

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


def _metrics_worker(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "worker.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_entries_no_worker_reads_are_warned_about_until_applied(
    db_url: str, redis_url: str, key_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """K=2 and a producer that ignored the routing rule: the base stream's entries are counted in
    status (text and JSON), /v1/pipeline and the worker's log, and a one-off K=1 run applies them."""
    s = settings(db_url, redis_url, key_prefix, shards=2)
    client = connect(redis_url)
    try:
        client.xadd(s.keys.streams[0], {STREAM_FIELD: good(1)})  # a routed one: not counted
        for i in range(3):
            client.xadd(s.stream, {STREAM_FIELD: good(100 + i)})
    finally:
        client.close()
    env = worker_env(s)

    text = _metrics_worker(env, "status")
    assert text.returncode == 0, text.stderr
    (warning,) = [line for line in text.stdout.splitlines() if line.startswith("WARNING")]
    assert f"3 entries in {s.stream}, the base stream, that no worker reads" in warning
    assert "contract/routing.py" in warning and "metrics-worker run --shards 1 --burst" in warning
    cli, api = both_views(s, monkeypatch)
    assert (cli["unrouted"], api["unrouted"]) == (3, 3)
    assert cli["base_stream"] == api["base_stream"] == s.stream

    run = _metrics_worker(env, "run", "--burst")  # reads the two shards, logs the warning, exits
    assert run.returncode == 0, run.stderr
    assert f"WARNING worker.ingest.housekeeping 3 entries in {s.stream}, the base stream" in run.stderr

    once = _metrics_worker(env, "run", "--burst", "--shards", "1")  # what the warning says to do
    assert once.returncode == 0, once.stderr
    after = _metrics_worker(env, "status", "--json")
    assert after.returncode == 0, after.stderr
    assert json.loads(after.stdout)["unrouted"] == 0
    assert "WARNING" not in _metrics_worker(env, "status").stdout
    with psycopg.connect(db_url) as conn:  # all four applied: 1 routed, 3 from the base stream
        assert conn.execute("SELECT sum(count) FROM execute_sync_mismatch_metrics").fetchone() == (4,)


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


def test_the_applied_rate_leaves_dead_letters_out_and_survives_a_purge() -> None:
    before = PipelineStatus(group="g", read_at=100.0, acknowledged=1000, dead_letters=5)

    def later(acknowledged: int | None, dead_letters: int) -> PipelineStatus:
        return before.model_copy(
            update={"read_at": 102.0, "acknowledged": acknowledged, "dead_letters": dead_letters}
        )

    assert applied_per_second(before, later(1210, 15)) == 100.0  # 210 finished, 10 of them dead letters
    assert applied_per_second(before, later(1200, 0)) == 100.0  # the dead letters purged meanwhile
    assert applied_per_second(before, later(None, 5)) is None  # Redis < 7
    assert applied_per_second(before, before) is None  # no time between them
