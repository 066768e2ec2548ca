"""Helpers that run the Node.js producer of examples/node: install it (npm ci, once per run), run it,
and check what it published landed in PostgreSQL and is reconciled as contract/liveness.py says."""

from __future__ import annotations

import functools
import json
import shutil
import signal
import subprocess
import sys
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from contract.codec import STREAM_FIELD, decode, encode
from contract.connect import Client, is_cluster, placed
from contract.events import RoundStarted, SessionStarted
from contract.keys import Keys
from contract.routing import routing_id
from tests.ingest.helpers import worker_env
from worker.maintenance.jobs import run_reconcile
from worker.runs import utcnow
from worker.settings import ReconcileSettings, WorkerSettings

ROOT = Path(__file__).resolve().parents[2]
NODE_DIR = ROOT / "examples" / "node"
CONFORMANCE = ROOT / "contract" / "conformance.json"
README = ROOT / "README.md"
SESSIONS, ROUNDS, TOOLS = 3, 2, 2


def node_or_skip() -> None:
    missing = [name for name in ("node", "npm") if shutil.which(name) is None]
    if missing:
        pytest.skip(f"{' and '.join(missing)} not on PATH: apt-get install nodejs npm (CI's .ci/run does)")
    version = subprocess.run(["node", "--version"], capture_output=True, text=True, check=True).stdout
    if tuple(int(n) for n in version.strip().lstrip("v").split(".")[:2]) < (18, 19):
        pytest.skip(f"node {version.strip()}: npm's redis 5 needs Node.js 18.19 or later")


@functools.cache
def installed() -> Path:
    """examples/node with its node_modules, as package-lock.json pins them (npm ci, once)."""
    node_or_skip()
    done = subprocess.run(
        ["npm", "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, f"npm ci in {NODE_DIR}: {done.stderr[-2000:]}"
    return NODE_DIR


def node(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["node", "producer.js", *args], cwd=installed(), capture_output=True, text=True, timeout=timeout
    )


@dataclass
class Run:
    """One producer run that keeps its last session open (and heartbeating) until stopped."""

    proc: subprocess.Popen[str]
    sessions: list[str]
    open: str
    cluster: bool
    streams: list[str]

    def stop(self) -> None:
        """SIGTERM, as a service manager stops an agent: it removes its open session's heartbeat."""
        self.proc.send_signal(signal.SIGTERM)
        _, err = self.proc.communicate(timeout=30)
        assert self.proc.returncode == 0, err


def start(url: str, stream: str, shards: int) -> Run:
    run = f"node-{uuid.uuid4().hex[:8]}-\u00e9"  # a non-ASCII id routes by its UTF-8 bytes
    proc = subprocess.Popen(
        [
            "node",
            "producer.js",
            "--url",
            url,
            "--stream",
            stream,
            "--shards",
            str(shards),
            "--run",
            run,
            "--sessions",
            str(SESSIONS),
            "--rounds",
            str(ROUNDS),
            "--tools",
            str(TOOLS),
            "--keep-open",
        ],
        cwd=installed(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()  # printed once everything is published; the process stays up
    if not line:
        proc.wait(30)
        raise AssertionError(
            f"producer.js exited {proc.returncode}: {proc.stderr.read() if proc.stderr else ''}"
        )
    out = json.loads(line)
    return Run(proc, out["sessions"], out["open"], out["cluster"], out["streams"])


def assert_routed(client: Client, keys: Keys, run: Run) -> None:
    """Every session's events on the shard the contract names for it, none on the base stream."""
    keys = placed(keys, client)
    assert run.cluster == is_cluster(client)
    assert run.streams == keys.streams
    (listed,) = (
        d["streams"]
        for d in json.loads(CONFORMANCE.read_text())["deployments"]
        if (d["stream"], d["shards"], d["cluster"]) == ("metrics:events", len(run.streams), run.cluster)
    )
    assert run.streams == [name.replace("metrics:events", keys.stream, 1) for name in listed]
    assert not client.exists(keys.stream)
    found: dict[tuple[str, str], int] = {}
    for stream in keys.streams:
        for _, fields in client.xrange(stream):
            event = decode(fields[STREAM_FIELD.encode()])
            found[stream, routing_id(event)] = found.get((stream, routing_id(event)), 0) + 1
    per_session = 1 + ROUNDS * (2 + 2 * TOOLS)  # a start, then each round's events
    assert found == {
        (keys.stream_for(sid), sid): per_session + (0 if sid == run.open else 1) for sid in run.sessions
    }


def publish_silent(client: Client, keys: Keys) -> tuple[str, datetime]:
    """A session and a round with no heartbeat, as an ingest path with no client behind it sends;
    its id and its last activity."""
    session_id = f"silent-{uuid.uuid4().hex[:8]}"
    at = utcnow() - timedelta(seconds=1)
    _publish(
        client,
        keys,
        SessionStarted(event_id=uuid.uuid4().hex, occurred_at=at, session_id=session_id, model="gpt-4o"),
    )
    publish_round(client, keys, session_id, "r0", at)
    return session_id, at


def publish_round(client: Client, keys: Keys, session_id: str, name: str, at: datetime) -> None:
    """A round of ``session_id`` started at ``at`` (on the session's shard, as any producer routes it)."""
    _publish(
        client,
        keys,
        RoundStarted(
            event_id=uuid.uuid4().hex,
            occurred_at=at,
            round_id=f"{session_id}-{name}",
            session_id=session_id,
            model="gpt-4o",
        ),
    )


def _publish(client: Client, keys: Keys, event: SessionStarted | RoundStarted) -> None:
    client.xadd(placed(keys, client).stream_for(event.session_id), {STREAM_FIELD: encode(event)})


def burst_worker(settings: WorkerSettings) -> None:
    """``metrics-worker run --burst`` as a subprocess: drains every shard and exits 0."""
    script = Path(sys.executable).with_name("metrics-worker")
    done = subprocess.run(
        [str(script), "run", "--burst"], env=worker_env(settings), capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]


def assert_landed(conn: psycopg.Connection[Any], run: Run) -> None:
    """Exactly the sessions, rounds and tool calls the producer published, with their numbers."""
    prompt = sum(100 * (r + 1) for r in range(ROUNDS))
    completion = sum(10 * (r + 1) for r in range(ROUNDS))
    sessions = conn.execute(
        "SELECT session_id, model, status, total_rounds, tool_call_count, prompt_tokens, completion_tokens,"
        " total_tokens, started_at IS NOT NULL, (completed_at IS NOT NULL) FROM session_metrics"
        " WHERE session_id = ANY(%s) ORDER BY session_id",
        (run.sessions,),
    ).fetchall()
    assert sessions == [
        (
            sid,
            "gpt-4o",
            "running" if sid == run.open else "completed",
            ROUNDS,
            ROUNDS * TOOLS,
            prompt,
            completion,
            prompt + completion,
            True,
            sid != run.open,
        )
        for sid in sorted(run.sessions)
    ]
    rounds = conn.execute(
        "SELECT round_id, status, prompt_tokens, completion_tokens, total_tokens FROM round_metrics"
        " WHERE session_id = ANY(%s) ORDER BY round_id",
        (run.sessions,),
    ).fetchall()
    assert rounds == sorted(
        (f"{sid}-r{r}", "success", 100 * (r + 1), 10 * (r + 1), 110 * (r + 1))
        for sid in run.sessions
        for r in range(ROUNDS)
    )
    tools = conn.execute(
        "SELECT tool_call_id, round_id, tool_name, success, completed_at IS NOT NULL FROM tool_call_metrics"
        " WHERE session_id = ANY(%s) ORDER BY tool_call_id",
        (run.sessions,),
    ).fetchall()
    assert tools == sorted(
        (f"{sid}-r{r}-t{t}", f"{sid}-r{r}", "read_file" if t % 2 else "grep", True, True)
        for sid in run.sessions
        for r in range(ROUNDS)
        for t in range(TOOLS)
    )


def status_of(conn: psycopg.Connection[Any], session_id: str) -> str:
    row = conn.execute("SELECT status FROM session_metrics WHERE session_id = %s", (session_id,)).fetchone()
    assert row is not None, session_id
    return str(row[0])


def closing_of(conn: psycopg.Connection[Any], session_id: str) -> tuple[str, datetime | None, bool]:
    """(status, completed_at, whether reconcile closed it)."""
    row = conn.execute(
        "SELECT status, completed_at, reconciled_at IS NOT NULL FROM session_metrics WHERE session_id = %s",
        (session_id,),
    ).fetchone()
    assert row is not None, session_id
    return row[0], row[1], row[2]


def land_then_reconcile(conn: psycopg.Connection[Any], client: Client, settings: WorkerSettings) -> None:
    """The Node.js producer against ``settings``' Redis: its sessions land exactly; with a grace of
    zero, reconcile leaves its heartbeating session running and closes one that never beat, at its
    last activity and marked; a later round reopens that one and the next reconcile closes it at
    the new last activity; once the producer stops, its session (marked awaiting its user) is
    closed as awaiting_response."""
    run = start(settings.redis_url, settings.stream, settings.shards)
    try:
        keys = settings.keys
        assert_routed(client, keys, run)
        silent, last = publish_silent(client, keys)
        burst_worker(settings)
        assert_landed(conn, run)
        assert client.zscore(keys.active_sessions, run.open) > utcnow().timestamp()
        assert client.zscore(keys.awaiting_sessions, run.open) is not None
        at_once = ReconcileSettings(  # a grace of zero: every session is idle past it
            database_url=settings.database_url,
            redis_url=settings.redis_url,
            stream=settings.stream,
            shards=settings.shards,
            group=settings.group,
            reconcile_grace=timedelta(0),
        )
        assert _counts(run_reconcile(at_once)) == {
            "rounds": 1,
            "sessions_completed": 1,
            "sessions_awaiting": 0,
        }
        assert status_of(conn, run.open) == "running"
        assert closing_of(conn, silent) == ("completed", last, True)  # ended when last heard of
        later = utcnow()
        publish_round(client, keys, silent, "r1", later)  # the agent was alive after all
        burst_worker(settings)
        assert closing_of(conn, silent) == ("running", None, False)
        assert _counts(run_reconcile(at_once)) == {
            "rounds": 1,
            "sessions_completed": 1,
            "sessions_awaiting": 0,
        }
        assert closing_of(conn, silent) == ("completed", later, True)
        assert status_of(conn, run.open) == "running"
    finally:
        run.stop()
    assert client.zscore(keys.active_sessions, run.open) is None  # its producer said goodbye
    assert client.zscore(keys.awaiting_sessions, run.open) is not None  # and left how to close it
    assert _counts(run_reconcile(at_once)) == {"rounds": 0, "sessions_completed": 0, "sessions_awaiting": 1}
    assert status_of(conn, run.open) == "awaiting_response"


def _counts(details: dict[str, Any]) -> dict[str, int]:
    return {name: details[name] for name in ("rounds", "sessions_completed", "sessions_awaiting")}
