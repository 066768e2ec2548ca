"""The metrics-producer console script: publish (file or stdin) and simulate."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from contract import encode
from producer.cli import main
from producer.histories import agent_events
from tests.producer.conftest import read_stream
from worker.dev.embedded import free_port


def good_lines(count: int, seed: int = 1) -> list[str]:
    events = agent_events(random.Random(seed), sessions=10)
    return [encode(next(events)).decode() for _ in range(count)]


def test_publish_sends_the_valid_lines_and_names_the_bad_ones(
    redis_url: str, stream: str, tmp_path: Path, redis_client: redis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = good_lines(20)
    broken = json.loads(lines[3])
    broken["event_id"] = 42
    lines[3] = json.dumps(broken)
    lines[7] = "{not json"
    lines[11] = json.dumps({**json.loads(lines[11]), "type": "session.exploded"})
    lines.insert(15, "")  # blank lines are skipped
    source = tmp_path / "events.jsonl"
    source.write_text("\n".join(lines) + "\n")
    code = main(
        [
            "publish",
            "--redis-url",
            redis_url,
            "--stream",
            stream,
            "--spool-dir",
            str(tmp_path / "spool"),
            str(source),
        ]
    )
    err = capsys.readouterr().err
    assert code == 1
    assert f"{source}:4: event_id: Input should be a valid string (got 42)" in err
    assert f"{source}:8: event: not valid JSON" in err
    assert f"{source}:12: type: unknown event type" in err
    assert "published 17 events, rejected 3 lines; Redis got 17 directly and 0 replayed" in err
    sent = read_stream(redis_client, stream)
    assert [encode(e).decode() for e in sent] == [
        line for i, line in enumerate(lines) if i not in (3, 7, 11, 15)
    ]


def test_publish_with_redis_away_keeps_the_events_and_says_so(
    stream: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "events.jsonl"
    source.write_text("\n".join(good_lines(5)) + "\n")
    spool = tmp_path / "spool"
    code = main(
        [
            "publish",
            "--redis-url",
            f"redis://127.0.0.1:{free_port()}/0",
            "--stream",
            stream,
            "--spool-dir",
            str(spool),
            "--timeout",
            "2",
            str(source),
        ]
    )
    assert code == 3
    assert f"the events wait in {spool}" in capsys.readouterr().err
    assert any(spool.iterdir())


@pytest.mark.acceptance
def test_publish_reads_stdin_and_settings_from_the_environment(
    redis_url: str, stream: str, tmp_path: Path, redis_client: redis.Redis
) -> None:
    env = {"REDIS_URL": redis_url, "METRICS_STREAM": stream, "METRICS_SPOOL_DIR": str(tmp_path), "PATH": ""}
    done = subprocess.run(
        [sys.executable, "-m", "producer.cli", "publish", "-"],
        input="\n".join(good_lines(30)),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert redis_client.xlen(stream) == 30


@pytest.mark.acceptance
def test_simulate_runs_agents_and_prints_a_count(
    redis_url: str, stream: str, tmp_path: Path, redis_client: redis.Redis
) -> None:
    script = Path(sys.executable).parent / "metrics-producer"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "producer.cli"]
    done = subprocess.run(
        [
            *command,
            "simulate",
            "--redis-url",
            redis_url,
            "--stream",
            stream,
            "--spool-dir",
            str(tmp_path),
            "--agents",
            "3",
            "--sessions",
            "4",
            "--seed",
            "7",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    last = done.stdout.strip().splitlines()[-1]
    assert last.startswith("simulated 3 agents: ") and "12 sessions" in last and "dropped 0" in last
    events = read_stream(redis_client, stream)
    assert f" {len(events)} events," in last
    assert sum(e.type == "session.completed" for e in events) == 12
    assert "events" in done.stderr  # the progress bar


@pytest.mark.acceptance
def test_simulate_with_processes_rate_and_duration_completes_every_session(
    redis_url: str, stream: str, tmp_path: Path, redis_client: redis.Redis
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "producer.cli", "simulate", "--redis-url", redis_url, "--stream", stream,
         "--spool-dir", str(tmp_path), "--agents", "2", "--sessions", "100000", "--rate", "3000",
         "--duration", "1", "--processes", "--no-progress"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    events = read_stream(redis_client, stream)
    started = {e.session_id for e in events if e.type == "session.started"}  # type: ignore[union-attr]
    completed = {e.session_id for e in events if e.type == "session.completed"}  # type: ignore[union-attr]
    assert started == completed and len(started) > 10
    assert 1_000 < len(events) < 6_000  # ~3,000/s for ~1 s, plus the sessions in flight


def test_settings_come_from_flags_then_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from producer.cli import build_parser, settings_from

    monkeypatch.setenv("METRICS_STREAM", "env:stream")
    monkeypatch.setenv("METRICS_SHARDS", "4")
    monkeypatch.setenv("METRICS_SPOOL_DIR", str(tmp_path))
    settings = settings_from(build_parser().parse_args(["publish", "--shards", "2", "-"]))
    assert (settings.stream, settings.shards, settings.spool_dir) == ("env:stream", 2, tmp_path)
    assert settings.keys.streams == ["env:stream:{0}", "env:stream:{1}"]
    monkeypatch.setenv("METRICS_SHARDS", "two")
    with pytest.raises(SystemExit):
        main(["publish", "-"])


def test_time_flags_take_units_and_a_bare_number_is_seconds() -> None:
    from producer.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(["publish", "--timeout", "2m", "-"]).timeout == 120.0
    assert parser.parse_args(["publish", "--timeout", "5", "-"]).timeout == 5.0
    assert parser.parse_args(["simulate", "--duration", "1500ms"]).duration == 1.5
    with pytest.raises(SystemExit) as refused:
        parser.parse_args(["publish", "--timeout", "soon", "-"])
    assert refused.value.code == 2
