"""The pipeline's state read both ways a person reads it (``metrics-worker status --json`` and the
API's /v1/pipeline), after a worker of its own dead-lettered an entry on every shard."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import warnings
from datetime import UTC, datetime
from typing import Any

import pytest
from starlette.exceptions import StarletteDeprecationWarning

with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

from contract.codec import STREAM_FIELD, encode
from contract.connect import Client, node_for, placed
from contract.events import SyncMismatch
from tests.ingest.helpers import drain, worker_env
from worker.ingest.stream import StreamClient
from worker.read.api import create_app
from worker.settings import WorkerSettings
from worker.status import PipelineStatus, applied_per_second, read_status

#: Valid JSON that fails the contract: the worker dead-letters it with this in the reason.
BAD = b'{"v": 1, "event_id": "bad", "type": "round.exploded", "occurred_at": "2026-02-10T10:00:00Z"}'
BAD_REASON = "unknown event type"


def good(i: int) -> bytes:
    return encode(SyncMismatch(event_id=f"ok-{i}", occurred_at=datetime(2026, 2, 10, tzinfo=UTC), reason="r"))


def dead_letter_on_every_shard(s: WorkerSettings, client: Client, good_per_shard: int = 3) -> PipelineStatus:
    """Publish ``good_per_shard`` valid entries and one bad one to every shard, run a worker in
    burst mode, and return the view before it ran (for the applied rate)."""
    keys = placed(s.keys, client)
    StreamClient(client, s.keys, s.group, "setup").ensure_groups()
    before = read_status(client, s.keys, s.group)
    for shard, stream in enumerate(keys.streams):
        for i in range(good_per_shard):
            client.xadd(stream, {STREAM_FIELD: good(shard * 1000 + i)})
        client.xadd(stream, {STREAM_FIELD: BAD})
    worker = drain(s)
    assert worker.totals.dead_lettered == len(keys.streams)
    return before


def leave_work_waiting(s: WorkerSettings, client: Client) -> float:
    """Two entries per shard read by a consumer that then stops (pending), one never read
    (undelivered); returns when they were published (Unix seconds)."""
    keys = placed(s.keys, client)
    published = time.time()
    for shard, stream in enumerate(keys.streams):
        for i in range(3):
            client.xadd(stream, {STREAM_FIELD: good(10_000 + shard * 1000 + i)})
    for stream in keys.streams:
        client.xreadgroup(s.group, "stuck", {stream: ">"}, count=2)
    return published


def both_views(s: WorkerSettings, monkeypatch: pytest.MonkeyPatch) -> tuple[dict[str, Any], dict[str, Any]]:
    """(``metrics-worker status --json``, /v1/pipeline of an API over the same settings)."""
    done = subprocess.run(
        [sys.executable, "-m", "worker.cli", "status", "--json"],
        env=worker_env(s),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    for name, value in (
        ("METRICS_STREAM", s.stream),
        ("METRICS_SHARDS", str(s.shards)),
        ("METRICS_GROUP", s.group),
    ):
        monkeypatch.setenv(name, value)
    with TestClient(create_app(s.database_url, tokens=[], redis_url=s.redis_url)) as api:
        served = api.get("/v1/pipeline")
    assert served.status_code == 200, served.text
    return json.loads(done.stdout), served.json()


def steady(view: dict[str, Any]) -> dict[str, Any]:
    """The view without what moves by itself between two reads: the time, idle times, ages."""
    out = {k: v for k, v in view.items() if k not in ("read_at", "lag_seconds")}
    out["streams"] = [
        {
            **{k: v for k, v in st.items() if k not in ("lag_seconds", "consumers")},
            "consumers": [{k: v for k, v in c.items() if k != "idle_ms"} for c in st["consumers"]],
        }
        for st in view["streams"]
    ]
    return out


def check_agreement(s: WorkerSettings, client: Client, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Dead letters by the worker on every shard, work left waiting; then both views agree with
    each other and with what was done. Returns the CLI's view."""
    keys = placed(s.keys, client)
    k = len(keys.streams)
    version = node_for(client, keys.streams[0])[1].info("server")["redis_version"]
    counted = int(str(version).split(".")[0]) >= 7  # Redis 6.2 has no lag nor read counter: None
    before = dead_letter_on_every_shard(s, client)
    after = read_status(client, s.keys, s.group)
    if counted:
        assert after.acknowledged is not None and before.acknowledged is not None
        assert after.acknowledged - before.acknowledged == 4 * k  # 3 applied, 1 dead-lettered, per shard
        rate = applied_per_second(before, after)
        assert rate == pytest.approx(3 * k / (after.read_at - before.read_at))
    else:
        assert after.acknowledged is None and applied_per_second(before, after) is None
    published = leave_work_waiting(s, client)
    time.sleep(0.3)  # so that the oldest waiting entry is measurably old
    cli, api = both_views(s, monkeypatch)
    elapsed = time.time() - published
    assert steady(cli) == steady(api)
    for view in (cli, api):
        assert view["configured"] and view["group"] == s.group
        assert view["dead_letters"] == k
        assert (view["base_stream"], view["unrouted"]) == (s.stream, 0)
        assert view["dead_letter_streams"] == keys.dead_letter_streams
        assert sorted(letter["stream"] for letter in view["latest_dead_letters"]) == sorted(keys.streams)
        assert all(BAD_REASON in letter["reason"] for letter in view["latest_dead_letters"])
        assert [st["stream"] for st in view["streams"]] == keys.streams
        assert (view["undelivered"], view["pending"]) == (k if counted else None, 2 * k)
        shard = (1, 2, 4) if counted else (None, 2, None)  # undelivered, pending, acknowledged
        for st in view["streams"]:
            assert (st["undelivered"], st["pending"], st["acknowledged"]) == shard
            assert {c["name"]: c["pending"] for c in st["consumers"]}["stuck"] == 2
            assert 0.3 <= st["lag_seconds"] <= elapsed + 1
        assert 0.3 <= view["lag_seconds"] <= elapsed + 1
    assert abs(cli["lag_seconds"] - api["lag_seconds"]) < 5
    return cli
