"""``metrics-otlp`` as a console script (python -m producer.otlp.server): its refusals at start,
each one line and exit 2, and a real serve until SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import redis

from tests.otlp.payloads import chats, encoded
from tests.otlp.serving import PROTOBUF, wait_for
from worker.dev.embedded import free_port

pytestmark = pytest.mark.acceptance
INGEST = "ingest-token-0123456789abcdef"


def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("METRICS_")}
    return subprocess.run(
        [sys.executable, "-m", "producer.otlp.server", *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("args", "env", "says"),
    [
        (["--host", "0.0.0.0"], {}, "without ingest tokens: set METRICS_INGEST_TOKENS"),
        (["--port", "0"], {}, "is not a port"),
        ([], {"METRICS_INGEST_TOKENS": "short"}, "METRICS_INGEST_TOKENS: token 1 is 5 characters"),
        ([], {"METRICS_INGEST_TOKENS": INGEST, "METRICS_API_TOKENS": INGEST}, "also a read token"),
        ([], {"METRICS_OTLP_MAX_BODY": "lots"}, "METRICS_OTLP_MAX_BODY: cannot read 'lots'"),
        (["--max-body", "10"], {}, "METRICS_OTLP_MAX_BODY (max_body): must be at least 1024"),
    ],
)
def test_a_refusal_at_start_is_one_line_and_exit_2(args: list[str], env: dict[str, str], says: str) -> None:
    done = run(*args, **env)
    assert done.returncode == 2, done.stderr
    assert says in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert INGEST not in done.stderr  # a token is never shown


def test_it_serves_until_sigterm(
    redis_url: str, key_prefix: str, redis_client: redis.Redis, tmp_path: Path
) -> None:
    port = free_port()
    stream = f"{key_prefix}:events"
    env = {**os.environ, "REDIS_URL": redis_url, "METRICS_STREAM": stream, "METRICS_INGEST_TOKENS": INGEST}
    with (tmp_path / "otlp.log").open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "producer.otlp.server", "--port", str(port)],
            env=env,
            stderr=log,
            stdout=log,
        )
    try:
        url = f"http://127.0.0.1:{port}"

        def healthy() -> bool:
            try:
                return httpx.get(f"{url}/healthz").status_code == 200
            except httpx.TransportError:
                assert proc.poll() is None, (tmp_path / "otlp.log").read_text()
                return False

        wait_for(healthy, timeout=30)
        headers = {"content-type": PROTOBUF}
        body = encoded(chats(2), PROTOBUF)
        assert httpx.post(f"{url}/v1/traces", content=body, headers=headers).status_code == 401
        headers["authorization"] = f"Bearer {INGEST}"
        assert httpx.post(f"{url}/v1/traces", content=body, headers=headers).status_code == 200
        assert redis_client.xlen(stream) > 0
    finally:
        proc.send_signal(signal.SIGTERM)
        # uvicorn shuts down gracefully, then ends by the signal it caught (as the shell expects)
        assert proc.wait(20) in (0, -signal.SIGTERM), (tmp_path / "otlp.log").read_text()
    text = (tmp_path / "otlp.log").read_text()
    assert "Application shutdown complete" in text and INGEST not in text
