"""Poison and bad input: each bad entry is dead-lettered with its reason, the valid ones are applied."""

from __future__ import annotations

import json
import random
import subprocess
import sys

import psycopg
import pytest
import redis

from contract.codec import STREAM_FIELD, encode
from contract.events import RoundCompleted, RoundStarted, SessionStarted, TokenUsage
from tests.engine.histories import T0, coherent_history
from tests.engine.reference import SeedReference, database_tables
from tests.ingest.helpers import drain, publish, settings, worker_env
from worker.ingest import triage
from worker.ingest.consumer import Worker
from worker.ingest.deadletter import DeadLetters
from worker.ingest.stream import Batch
from worker.ingest.triage import sort_entries

VALID = {
    "v": 1,
    "event_id": "x",
    "type": "sync.mismatch",
    "occurred_at": "2026-02-10T10:00:00Z",
    "reason": "r",
}


def _json(**changes: object) -> bytes:
    return json.dumps({**VALID, **changes}).encode()


MALFORMED: list[tuple[dict[bytes | str, bytes | str], str]] = [
    ({STREAM_FIELD: b"not json"}, "not valid JSON"),
    ({STREAM_FIELD: b""}, "not valid JSON"),
    ({STREAM_FIELD: b"\xff\xfe\x00"}, "not valid UTF-8"),
    ({STREAM_FIELD: b"[1,2,3]"}, "must be a JSON object"),
    ({STREAM_FIELD: b"42"}, "must be a JSON object"),
    ({STREAM_FIELD: b"null"}, "must be a JSON object"),
    ({"payload": _json()}, "no 'event' field"),
    ({STREAM_FIELD: _json(type="round.exploded")}, "unknown event type"),
    # Unhashable and too deep: each crashed every worker that claimed it, until they were reasons.
    ({STREAM_FIELD: _json(type=["sync.mismatch"])}, "type: unknown event type"),
    ({STREAM_FIELD: _json(type={"name": "sync.mismatch"})}, "type: unknown event type"),
    (
        {STREAM_FIELD: b'{"type": "sync.mismatch", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"},
        "nested too deeply",
    ),
    ({STREAM_FIELD: _json(v=99)}, "newer than the supported version"),
    ({STREAM_FIELD: _json(v="1")}, "v:"),
    ({STREAM_FIELD: _json(event_id="e" * 200)}, "event_id: is 200 characters long, over the maximum of 128"),
    ({STREAM_FIELD: _json(event_id=None)}, "event_id:"),
    ({STREAM_FIELD: _json(occurred_at="2026-13-01T00:00:00Z")}, "occurred_at:"),
    ({STREAM_FIELD: _json(occurred_at="2026-02-10 10:00")}, "occurred_at:"),
    ({STREAM_FIELD: _json(occurred_at=12345)}, "occurred_at:"),
    # Valid JSON and a valid datetime, but no UTC instant exists for it: it crashed the batch once.
    ({STREAM_FIELD: _json(occurred_at="0001-01-01T00:30:00+01:00")}, "occurred_at: is out of range"),
    ({STREAM_FIELD: _json(reason="")}, "reason:"),
    ({STREAM_FIELD: _json(reason="a\u0000b")}, "NUL"),
    (
        {
            STREAM_FIELD: json.dumps(
                {
                    "v": 1,
                    "event_id": "y",
                    "type": "round.completed",
                    "occurred_at": "2026-02-10T10:00:00Z",
                    "round_id": "r",
                    "session_id": "s",
                    "status": "success",
                    "usage": {"prompt_tokens": -5, "completion_tokens": 0, "total_tokens": 0},
                }
            )
        },
        "usage.prompt_tokens",
    ),
    # A part larger than its whole: the reason names both, with their values.
    (
        {
            STREAM_FIELD: json.dumps(
                {
                    "v": 1,
                    "event_id": "p",
                    "type": "round.completed",
                    "occurred_at": "2026-02-10T10:00:00Z",
                    "round_id": "r",
                    "session_id": "s",
                    "status": "success",
                    "usage": {
                        "prompt_tokens": 10,
                        "completion_tokens": 5,
                        "total_tokens": 15,
                        "cache_read_tokens": 11,
                    },
                }
            )
        },
        "usage.cache_read_tokens: cache_read_tokens (11) is larger than prompt_tokens (10)",
    ),
    (
        {
            STREAM_FIELD: json.dumps(
                {
                    "v": 1,
                    "event_id": "o",
                    "type": "forward.completed",
                    "occurred_at": "2026-02-10T10:00:00Z",
                    "forward_id": "f",
                    "status": "success",
                    "usage": {
                        "prompt_tokens": 10,
                        "completion_tokens": 5,
                        "total_tokens": 15,
                        "reasoning_tokens": 6,
                    },
                }
            )
        },
        "usage.reasoning_tokens: reasoning_tokens (6) is larger than completion_tokens (5)",
    ),
    (
        {
            STREAM_FIELD: json.dumps(
                {
                    "v": 1,
                    "event_id": "z",
                    "type": "round.completed",
                    "occurred_at": "2026-02-10T10:00:00Z",
                    "round_id": "r",
                    "session_id": "s",
                    "status": "success",
                    "usage": None,
                }
            )
        },
        "usage",
    ),
    (
        {
            STREAM_FIELD: json.dumps(
                {
                    "v": 1,
                    "event_id": "w",
                    "type": "forward.started",
                    "occurred_at": "2026-02-10T10:00:00Z",
                    "forward_id": "f",
                    "endpoint": "/x",
                    "model": "m",
                    "is_stream": "yes",
                }
            )
        },
        "is_stream",
    ),
    (
        {
            STREAM_FIELD: json.dumps(
                {
                    "v": 1,
                    "event_id": "q",
                    "type": "session.completed",
                    "occurred_at": "2026-02-10T10:00:00Z",
                    "session_id": "s",
                    "status": "done",
                }
            )
        },
        "status",
    ),
    (
        {
            STREAM_FIELD: json.dumps(
                {
                    "v": 1,
                    "event_id": "k",
                    "type": "tool.started",
                    "occurred_at": "2026-02-10T10:00:00Z",
                    "tool_call_id": "t",
                    "round_id": "r",
                    "session_id": "s",
                }
            )
        },
        "tool_name: is required",
    ),
]


def test_batch_mixing_malformed_and_valid_entries(
    db_url: str, redis_url: str, key_prefix: str, redis_client: redis.Redis, conn: psycopg.Connection
) -> None:
    assert len(MALFORMED) >= 20
    rng = random.Random(1)
    history = coherent_history(rng, sessions=3)
    s = settings(db_url, redis_url, key_prefix, batch_size=500)
    valid = [encode(ev) for ev in history]
    entries = [{STREAM_FIELD: raw} for raw in valid] + [fields for fields, _ in MALFORMED]
    rng.shuffle(entries)
    ids_by_entry = {}
    for fields in entries:
        ids_by_entry[redis_client.xadd(s.stream, fields)] = fields
    worker = drain(s)
    assert database_tables(conn) == SeedReference.of(history).tables()
    letters = DeadLetters(redis_client, s.keys.dead_letters).list(count=1000)
    assert len(letters) == len(MALFORMED) == worker.totals.dead_lettered
    by_payload = {}
    for letter in letters:
        assert letter.stream == s.stream and letter.consumer == s.consumer and letter.group == s.group
        original = ids_by_entry[letter.entry_id.encode()]
        by_payload[id(original)] = letter
        raw = original.get(STREAM_FIELD)
        if raw is not None:
            assert letter.payload == (raw if isinstance(raw, bytes) else raw.encode())
    for fields, reason in MALFORMED:
        assert reason in by_payload[id(fields)].reason, (fields, by_payload[id(fields)].reason)
    assert redis_client.xpending(s.stream, s.group)["pending"] == 0


def test_an_entry_the_decoder_fails_on_is_dead_lettered_not_fatal(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever the decoder raises, the worker survives: the entry is dead-lettered with the error."""

    def broken(raw: bytes | str) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(triage, "decode", broken)
    out = sort_entries(Batch("s", [(b"1-0", {STREAM_FIELD.encode(): _json()})]), limit=5)
    assert [reason for _, _, reason in out.letters] == [
        "invalid event: the decoder failed (RuntimeError: boom)"
    ]
    assert out.good == []


def test_entry_postgres_refuses_is_dead_lettered_without_holding_back_its_batch(
    db_url: str, redis_url: str, key_prefix: str, redis_client: redis.Redis, conn: psycopg.Connection
) -> None:
    huge = TokenUsage(prompt_tokens=2**62, completion_tokens=2**62, total_tokens=2**63 - 1)
    events = [SessionStarted(event_id="s", occurred_at=T0, session_id="s1", model="m")]
    events += [
        RoundStarted(event_id=f"rs{i}", occurred_at=T0, round_id=f"r{i}", session_id="s1", model="m")
        for i in range(6)
    ]
    ok = RoundCompleted(
        event_id="ok", occurred_at=T0, round_id="r0", session_id="s1", status="success", usage=huge
    )
    overflow = RoundCompleted(
        event_id="overflow", occurred_at=T0, round_id="r1", session_id="s1", status="success", usage=huge
    )
    s = settings(db_url, redis_url, key_prefix, batch_size=100)
    publish(redis_client, s.stream, [*events, ok])
    drain(s)
    publish(redis_client, s.stream, [*events, overflow])  # the session's sum would leave bigint
    worker = drain(s)
    assert worker.totals.dead_lettered == 1
    (letter,) = DeadLetters(redis_client, s.keys.dead_letters).list()
    assert "refused" in letter.reason and "out of range" in letter.reason
    assert conn.execute("SELECT count(*) FROM round_metrics").fetchone()[0] == 6


def test_dlq_cli_lists_shows_redrives_and_purges(
    db_url: str, redis_url: str, key_prefix: str, redis_client: redis.Redis, conn: psycopg.Connection
) -> None:
    s = settings(db_url, redis_url, key_prefix)
    good = SessionStarted(event_id="late", occurred_at=T0, session_id="s1", model="m")
    # A valid event that was dead-lettered (say, by an older worker) and one that is still bad.
    redis_client.xadd(s.stream, {STREAM_FIELD: encode(good).replace(b'"v":1', b'"v":2')})
    redis_client.xadd(s.stream, {STREAM_FIELD: b"{broken"})
    drain(s)
    letters = DeadLetters(redis_client, s.keys.dead_letters)
    first, second = letters.list()
    redis_client.xdel(s.keys.dead_letters, first.id)
    redis_client.xadd(
        s.keys.dead_letters,
        {**{k: v for k, v in first.as_dict().items() if k != "id"}, "payload": encode(good)},
    )

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "worker.cli", "dlq", *args],
            env=worker_env(s),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    listed = cli("list")
    assert listed.returncode == 0 and "2 dead letters" in listed.stdout
    shown = cli("show", second.id, "--json")
    assert json.loads(shown.stdout)["payload"] == "{broken"
    missing = cli("show", "1-1")
    assert missing.returncode == 1 and "no dead letter with id 1-1" in missing.stderr  # not found
    assert cli("redrive").returncode == 2
    assert cli("redrive", "--all").returncode == 0
    assert letters.count() == 0
    drain(s)
    assert conn.execute("SELECT model FROM session_metrics WHERE session_id = 's1'").fetchone() == ("m",)
    (back,) = letters.list()  # what still fails goes back, with its reason
    assert back.payload == b"{broken" and "not valid JSON" in back.reason
    assert cli("purge", "--all").returncode == 0 and letters.count() == 0


def test_a_redis_url_that_decodes_responses_is_refused_at_start(
    db_url: str, redis_url: str, key_prefix: str
) -> None:
    s = settings(db_url, redis_url + ("&" if "?" in redis_url else "?") + "decode_responses=True", key_prefix)
    with pytest.raises(ValueError, match="decode_responses is not supported"):
        Worker(s, handle_signals=False)


def test_setup_mistakes_are_one_line_not_a_traceback(db_url: str, redis_url: str, key_prefix: str) -> None:
    """Found in review: each was a traceback."""
    import socket

    s = settings(db_url, redis_url, key_prefix)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        for extra_env, argv, says in (
            (
                {"METRICS_SCHEMA_FILE": "/nonexistent/schema.sql"},
                ["schema"],
                "METRICS_SCHEMA_FILE: cannot read",
            ),
            (
                {},
                ["run", "--burst", "--metrics-port", str(port)],
                "--metrics-port / METRICS_PORT: cannot serve",
            ),
            ({}, ["dlq", "show", "not-an-id"], "Redis refused it: Invalid stream ID"),
        ):
            done = subprocess.run(
                [sys.executable, "-m", "worker.cli", *argv],
                env={**worker_env(s), **extra_env},
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert done.returncode == 2, (argv, done.stderr)
            assert says in done.stderr and "Traceback" not in done.stderr, (argv, done.stderr)
