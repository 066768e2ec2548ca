"""``metrics-otlp`` as a user starts it (``python -m producer.otlp.server``, the console script's
module), on a free loopback port, and the real clients run against it with nothing but the two
environment variables a user sets: ``OTEL_EXPORTER_OTLP_ENDPOINT`` and ``OTEL_EXPORTER_OTLP_HEADERS``."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from worker.dev.embedded import free_port
from worker.settings import WorkerSettings

#: The token the tests give the receiver and the exporter (at least 16 characters).
TOKEN = "otlp-test-ingest-token-0123456789"


def _log(path: str) -> str:
    return Path(path).read_text(encoding="utf-8", errors="replace")[-3000:]


@contextlib.contextmanager
def receiver(settings: WorkerSettings, token: str | None = None) -> Iterator[str]:
    """Serves until the block ends; yields its base URL (what OTEL_EXPORTER_OTLP_ENDPOINT takes).
    With ``token``, it accepts only that ingest token; without, it runs with ``--no-auth``."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("METRICS_INGEST_TOKENS")}
    env.update(
        REDIS_URL=settings.redis_url, METRICS_STREAM=settings.stream, METRICS_SHARDS=str(settings.shards)
    )
    args = [sys.executable, "-m", "producer.otlp.server", "--host", "127.0.0.1", "--port", str(port)]
    if token is None:
        args.append("--no-auth")
    else:
        env["METRICS_INGEST_TOKENS"] = token
    with tempfile.NamedTemporaryFile(prefix="metrics-otlp-", suffix=".log", delete=False) as log:
        proc = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"metrics-otlp exited {proc.returncode}: {_log(log.name)}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"metrics-otlp did not listen on {port} within 30 s: {_log(log.name)}")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        os.unlink(log.name)


README = Path(__file__).resolve().parents[2] / "README.md"
#: Where the README's block points (metrics-otlp's default port); the tests' receiver is elsewhere.
README_ENDPOINT = "http://127.0.0.1:4318"


def readme_block() -> str:
    """The README's two exporter settings (From OpenTelemetry), as a user copies them."""
    return (
        README.read_text().split("<!-- readme-otlp-env -->", 1)[1].split("```sh\n", 1)[1].split("\n```", 1)[0]
    )


def client_env(endpoint: str, token: str | None = None, **extra: str) -> dict[str, str]:
    """This process's environment, without any OTEL_ variable, after the README's two lines ran in
    bash (with ``endpoint`` for the default one, ``token`` as METRICS_INGEST_TOKENS); without a
    token, only the endpoint is set."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    if token is None:
        return {**env, "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, **extra}
    block = readme_block()
    assert README_ENDPOINT in block, f"the README's exporter settings no longer name {README_ENDPOINT}"
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", block.replace(README_ENDPOINT, endpoint) + "\nenv -0"],
        env={**env, "METRICS_INGEST_TOKENS": token},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    after = dict(item.split("=", 1) for item in done.stdout.split("\0") if "=" in item)
    assert after["OTEL_EXPORTER_OTLP_ENDPOINT"] == endpoint
    return {**env, **{k: v for k, v in after.items() if k.startswith("OTEL_")}, **extra}


def run_client(
    args: list[str], env: dict[str, str], timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{args[1]} exited {done.returncode}: {done.stderr[-3000:]}"
    return done
