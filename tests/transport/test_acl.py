"""The ACL users of redis-users.acl, loaded as they are: a producer and a worker each do their whole
job with nothing more; what they were not given is refused; passwords never show in what is printed."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis

from contract.backlog import read_backlog
from producer import Publisher
from tests.conftest import Services
from tests.ingest.helpers import drain, settings, worker_env
from tests.transport.servers import free_port

ACL_FILE = Path(__file__).resolve().parents[2] / "redis-users.acl"
STREAM = "metrics:events"  # the file's key pattern is the default stream's


@pytest.fixture
def acl_redis(tmp_path: Path) -> Iterator[int]:
    port = free_port()
    proc = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
            "--aclfile",
            str(ACL_FILE),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        admin = redis.Redis(port=port)
        for _ in range(200):
            try:
                admin.ping()
                break
            except redis.ConnectionError:
                if proc.poll() is not None:
                    raise RuntimeError("redis-server refused the ACL file") from None
                subprocess.run(["sleep", "0.05"], check=True)
        yield port
    finally:
        proc.kill()
        proc.wait()


def _url(port: int, user: str) -> str:
    return f"redis://{user}:change-me-{user.split('-')[1]}@127.0.0.1:{port}/0"


def test_producer_and_worker_do_their_job_with_only_their_grants(
    acl_redis: int, db_url: str, tmp_path: Path
) -> None:
    producer_url, worker_url = _url(acl_redis, "metrics-producer"), _url(acl_redis, "metrics-worker")
    with Publisher(redis_url=producer_url, stream=STREAM, spool_dir=str(tmp_path / "spool")) as pub:
        with pub.session("gpt-4o", session_id="s-acl") as session, session.round() as r:
            r.usage(prompt_tokens=3, completion_tokens=4)
        pub.sync_mismatch("boom")
        assert pub.flush(10)
        stats = pub.stats()
    assert stats["sent"] == 5 and stats["send_failures"] == 0, stats
    admin = redis.Redis(port=acl_redis)
    admin.xadd(STREAM, {"event": "not json"})
    s = settings(db_url, worker_url, "metrics", stream=STREAM, consumer_idle_ms=0)
    drain(s)
    # metrics-otlp, run as the producer's user, reads the backlog for --max-backlog
    (found,) = read_backlog(redis.Redis.from_url(producer_url), [STREAM], s.group)
    assert (found.undelivered, found.pending) == (0, 0), found
    with psycopg.connect(db_url) as conn:
        assert conn.execute(
            "SELECT total_rounds FROM session_metrics WHERE session_id = 's-acl'"
        ).fetchone() == (1,)
    env = worker_env(s)
    for command in (
        ["status"],
        ["dlq", "list"],
        ["dlq", "redrive", "--all"],
        ["dlq", "purge", "--all"],
        ["reconcile"],
        ["prune", "--older-than", "90d"],
        ["forget", "--session", "s-acl"],
    ):
        done = subprocess.run(
            [sys.executable, "-m", "worker.cli", *command],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, (command, done.stdout, done.stderr)
        assert "change-me" not in done.stdout + done.stderr
    denied = [entry for entry in admin.acl_log() if entry.get("username", "").startswith("metrics-")]
    assert denied == [], denied


def test_what_was_not_granted_is_refused(acl_redis: int) -> None:
    worker = redis.Redis.from_url(_url(acl_redis, "metrics-worker"))
    producer = redis.Redis.from_url(_url(acl_redis, "metrics-producer"))
    for client, command in (
        (worker, ("FLUSHALL",)),
        (worker, ("GET", "other:key")),
        (worker, ("XADD", "other:stream", "*", "event", "{}")),
        (producer, ("XREADGROUP", "GROUP", "g", "c", "STREAMS", "metrics:events", ">")),
        (producer, ("XDEL", "metrics:events", "0-1")),
        (producer, ("CONFIG", "GET", "*")),
    ):
        with pytest.raises(redis.exceptions.NoPermissionError):
            client.execute_command(*command)


def test_a_wrong_password_is_an_error_that_does_not_print_it(acl_redis: int, services: Services) -> None:
    url = f"redis://metrics-worker:wrong-secret@127.0.0.1:{acl_redis}/0"
    done = subprocess.run(
        [sys.executable, "-m", "worker.cli", "status", "--redis-url", url],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=worker_env(settings(services.database_url, url, "x")),
    )
    assert done.returncode != 0
    assert "wrong-secret" not in done.stdout + done.stderr
    assert "invalid username-password" in done.stderr
