"""What the README shows is what runs: its publishing examples (Python and shell) through a real
worker, and the commands it gives for looking at the data."""

from __future__ import annotations

import itertools
import os
import re
import shlex
import string
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import redis

from tests.ingest.helpers import drain, settings
from worker.dev.embedded import free_port

README = Path(__file__).resolve().parent.parent / "README.md"
BIN = Path(sys.executable).parent
TOKEN = "readme-test-token-0123456789abcdef"


def _block(marker: str, language: str) -> str:
    """The fenced block right after ``<!-- marker -->`` in the README."""
    after = README.read_text().split(f"<!-- {marker} -->", 1)[1]
    found = re.match(rf"\s*```{language}\n(.*?)\n```", after, re.DOTALL)
    assert found, f"no {language} block after <!-- {marker} -->"
    return found.group(1)


def test_readme_xadd_example_is_applied(
    db_url: str, redis_url: str, key_prefix: str, redis_client: redis.Redis, conn: psycopg.Connection
) -> None:
    argv = shlex.split(_block("readme-xadd", "sh"))
    assert argv[:2] == ["redis-cli", "XADD"]
    s = settings(db_url, redis_url, key_prefix)
    redis_client.execute_command("XADD", s.stream, *argv[3:])  # the README's stream is the default one
    drain(s)
    assert conn.execute(
        "SELECT model, started_at = '2026-02-10T10:00:00Z' FROM session_metrics "
        "WHERE session_id = 's-from-shell'"
    ).fetchone() == ("gpt-4o", True)


def test_readme_usage_examples_fill_the_parts_as_the_contract_counts_them() -> None:
    """The OpenAI and Anthropic helpers of "Optional fields", on responses as those APIs send them."""
    from contract.events import TokenUsage

    names: dict[str, Any] = {}
    exec(_block("readme-usage", "python"), names)  # the README's own code
    openai = {
        "prompt_tokens": 2006, "completion_tokens": 300, "total_tokens": 2306,
        "prompt_tokens_details": {"cached_tokens": 1920, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 192, "audio_tokens": 0},
    }  # fmt: skip
    parts = TokenUsage(**names["usage_from_openai"](openai))
    got = (parts.prompt_tokens, parts.cache_read_tokens, parts.cache_write_tokens, parts.reasoning_tokens)
    assert got == (2006, 1920, None, 192)
    plain = TokenUsage(
        **names["usage_from_openai"]({"prompt_tokens": 9, "completion_tokens": 1, "total_tokens": 10})
    )
    assert (plain.cache_read_tokens, plain.reasoning_tokens) == (None, None)
    anthropic = {"input_tokens": 21, "cache_creation_input_tokens": 188, "cache_read_input_tokens": 1024,
                 "output_tokens": 393}  # fmt: skip
    parts = TokenUsage(**names["usage_from_anthropic"](anthropic))
    got = (parts.prompt_tokens, parts.total_tokens, parts.cache_read_tokens, parts.cache_write_tokens)
    assert got == (1233, 1626, 1024, 188)


def test_readme_commands_exist() -> None:
    text = README.read_text()
    for command in (
        "python3 tasks.py demo",
        "python3 tasks.py test",
        "metrics-worker dlq redrive --all",
        "metrics-worker status [--json]",
        "rq cron worker.maintenance.cron",
    ):
        assert command in text
    ci = (README.parent / ".ci" / "run").read_text()
    assert "python3 tasks.py test" in ci


@pytest.mark.acceptance
def test_readme_python_example_then_the_commands_to_look_at_it(
    db_url: str, redis_url: str, key_prefix: str, redis_client: redis.Redis, tmp_path: Path
) -> None:
    """Step 4 of "Use it with your agents" as a user runs it (a file, python, the environment of
    step 2), a worker applies it, and every command of step 6 shows the session it printed."""
    program = tmp_path / "my_agent.py"
    program.write_text(_block("readme-python", "python") + "\n")
    s = settings(db_url, redis_url, key_prefix)
    env = dict(
        os.environ,
        DATABASE_URL=db_url,
        REDIS_URL=redis_url,
        METRICS_STREAM=s.stream,
        METRICS_GROUP=s.group,
        METRICS_SPOOL_DIR=str(tmp_path / "spool"),
    )
    ran = subprocess.run(
        [sys.executable, str(program)], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert ran.returncode == 0 and not ran.stderr, ran.stderr
    session_id = ran.stdout.strip()
    drain(s)
    with psycopg.connect(db_url) as conn:
        row = conn.execute(
            "SELECT status, total_rounds, tool_call_count, message_count FROM session_metrics "
            "WHERE session_id = %s",
            (session_id,),
        ).fetchone()
        tool_ms = conn.execute(
            "SELECT extract(epoch FROM completed_at - started_at) * 1000 FROM tool_call_metrics "
            "WHERE session_id = %s",
            (session_id,),
        ).fetchone()
        forwards = conn.execute(
            "SELECT status, is_stream, session_id FROM forward_request_metrics"
        ).fetchall()
        optional = conn.execute(
            "SELECT s.user_id, s.cache_read_tokens, r.provider, r.cache_read_tokens, "
            "r.time_to_first_token_ms FROM session_metrics s JOIN round_metrics r USING (session_id) "
            "WHERE session_id = %s",
            (session_id,),
        ).fetchone()
    assert row == ("completed", 1, 1, 2)
    assert tool_ms is not None and tool_ms[0] >= 200  # the example's tool sleeps 0.2 s
    assert forwards == [("success", False, session_id)]  # begun inside the session: linked to it
    assert optional is not None and optional[:4] == ("user-42", 1024, "openai", 1024) and optional[4] >= 0

    port = free_port()
    env["METRICS_API_TOKENS"] = TOKEN  # so that the curl's header is needed, not decoration
    api = subprocess.Popen(
        [str(BIN / "metrics-api"), "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for line in _block("readme-look", "sh").splitlines():
            command = shlex.split(line.split("  #", 1)[0].replace("SESSION_ID", session_id))
            if command[0] == "curl":
                url = command[-1].replace(":8000", f":{port}")
                headers = dict(
                    string.Template(value).substitute(env).split(": ", 1)
                    for flag, value in itertools.pairwise(command)
                    if flag == "-H"
                )
                assert headers == {"Authorization": f"Bearer {TOKEN}"}, line
                body = _get_when_listening(url, api, headers)
                assert session_id in body, url
                continue
            assert command[0] == "metrics-worker", line
            shown = subprocess.run(
                [str(BIN / command[0]), *command[1:]],
                env={**env, "COLUMNS": "80"},
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert shown.returncode == 0, (line, shown.stderr)
            if {"session", "sessions"} & set(command):  # whole, or its tail where the terminal is narrow
                assert session_id in shown.stdout or f"…{session_id[-8:]}" in shown.stdout, shown.stdout
            assert shown.stdout.strip(), line
        # Step 6's dashboard: the page metrics-api serves at /, which asks for the token.
        step6 = README.read_text().split("**6. Look at the data**", 1)[1].split("## ", 1)[0]
        (dashboard,) = re.findall(r"In a browser, the same data on the dashboard at (\S+)", step6)
        page = httpx.get(dashboard.replace(":8000", f":{port}"), timeout=10)
        assert page.status_code == 200 and '<meta name="metrics-auth" content="required">' in page.text
    finally:
        api.terminate()
        api.wait(timeout=10)


def _get_when_listening(url: str, server: subprocess.Popen[bytes], headers: dict[str, str]) -> str:
    deadline = time.monotonic() + 20
    while True:
        try:
            response = httpx.get(url, headers=headers, timeout=2)
            assert response.status_code == 200, response.text
            return response.text
        except httpx.TransportError:
            assert server.poll() is None, "metrics-api exited before listening"
            assert time.monotonic() < deadline, "metrics-api did not listen within 20 s"
            time.sleep(0.1)


@pytest.mark.acceptance
def test_readme_otlp_commands_then_an_export_with_the_exporter_variables(
    redis_url: str, key_prefix: str, redis_client: redis.Redis
) -> None:
    """From OpenTelemetry: the token line and the metrics-otlp command as written (another port),
    then the exporter variables as an SDK reads them (the header list URL-decoded)."""
    from urllib.parse import unquote

    from tests.otlp.payloads import chats, encoded

    port = free_port()
    token_line, serve_line = _block("readme-otlp-serve", "sh").splitlines()
    token = subprocess.run(
        ["bash", "-c", f"{token_line}; echo $METRICS_INGEST_TOKENS"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    argv = shlex.split(serve_line.split("  #", 1)[0].replace("4318", str(port)))
    assert argv[0] == "metrics-otlp"
    stream = f"{key_prefix}:events"
    env = {**os.environ, "REDIS_URL": redis_url, "METRICS_STREAM": stream, "METRICS_INGEST_TOKENS": token}
    otlp = subprocess.Popen(
        [str(BIN / argv[0]), *argv[1:]], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        script = _block("readme-otlp-env", "sh").replace("4318", str(port))
        shown = subprocess.run(
            ["bash", "-c", f"{script}; env"], env=env, capture_output=True, text=True, check=True
        )
        exported = dict(line.split("=", 1) for line in shown.stdout.splitlines() if line.startswith("OTEL_"))
        headers = {
            key.strip(): unquote(value.strip())
            for key, value in (
                pair.split("=", 1) for pair in exported["OTEL_EXPORTER_OTLP_HEADERS"].split(",")
            )
        }
        assert headers == {"Authorization": f"Bearer {token}"}
        url = exported["OTEL_EXPORTER_OTLP_ENDPOINT"] + "/v1/traces"
        deadline = time.monotonic() + 30
        while True:
            try:
                response = httpx.post(
                    url,
                    content=encoded(chats(2), "application/x-protobuf"),
                    headers={**headers, "Content-Type": "application/x-protobuf"},
                    timeout=10,
                )
                break
            except httpx.TransportError:
                assert otlp.poll() is None and time.monotonic() < deadline, "metrics-otlp did not listen"
                time.sleep(0.1)
        assert response.status_code == 200, response.text
        assert redis_client.xlen(stream) > 0
    finally:
        otlp.terminate()
        otlp.wait(timeout=20)
