"""``demo --serve``: the demo's pipeline kept up until Ctrl-C, with metrics-api and a slow, steady
simulator, and the exact commands (with the variables they need) to look at it from another
terminal while it runs."""

from __future__ import annotations

import contextlib
import signal
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from types import FrameType

import psycopg

from worker.dev.demo import BIN, Processes, exports, say, script
from worker.dev.embedded import free_port

#: Children get this long to come up (the API to answer, the first session to be applied).
START_TIMEOUT = 90.0


def serve(
    procs: Processes, env: dict[str, str], schema: str, agents: int, rate: float, api_port: int | None
) -> int:
    """Start the API and the simulator next to ``procs``, print how to look, wait for a signal."""
    port = api_port or free_port()
    procs.start("metrics-api", str(BIN / "metrics-api"), "--port", str(port))
    procs.start(
        "simulator",
        str(BIN / "metrics-producer"),
        "simulate",
        "--agents",
        str(agents),
        "--sessions",
        "1000000",
        "--rate",
        str(rate),
        "--backfill",
        "10m",  # some history at once, then the agents in real time
        "--no-progress",
    )
    api = f"http://127.0.0.1:{port}"
    say(
        f"started metrics-api on {api}, and {agents} simulated agents: their last 10 minutes at up to "
        f"{rate:g} events/s, then in real time"
    )
    try:
        _wait(procs, "metrics-api to answer", lambda: _answers(f"{api}/healthz"))
        session_id = _wait(procs, "a first session to be applied", lambda: _a_session(env["DATABASE_URL"]))
    except RuntimeError as exc:
        say(str(exc))
        return 1
    print(_how_to_look(env, api, schema, session_id), flush=True)
    with _until_signal() as stopping:
        while not stopping.wait(1.0):
            dead = procs.stopped()
            if dead:
                say(f"these stopped (see their logs): {', '.join(dead)}")
                return 1
    say("stopping (Ctrl-C)")
    return 0


def _how_to_look(env: dict[str, str], api: str, schema: str, session_id: str) -> str:
    worker = script("metrics-worker")
    return "\n".join(
        [
            "",
            "The pipeline runs until Ctrl-C. In a browser:",
            f"  {api}/docs",
            f"  {api}/v1/sessions",
            "In another terminal (the variables first; the commands need them):",
            "  " + exports(env, "DATABASE_URL", "REDIS_URL", "METRICS_STREAM"),
            f"  {worker} query sessions --limit 10",
            f"  {worker} query session {session_id}",
            f"  {worker} query summary",
            f"  {worker} query forward-summary",
            f"  {worker} status",
            f"  curl -s {api}/v1/summary",
            f"The data stays in schema {schema}: `python3 tasks.py demo --serve --schema {schema}` "
            "brings it back.",
            "",
        ]
    )


def _wait(procs: Processes, what: str, found: Callable[[], str | None]) -> str:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        dead = procs.stopped()
        if dead:
            raise RuntimeError(f"waiting for {what}, these stopped (see their logs): {', '.join(dead)}")
        value = found()
        if value:
            return value
        time.sleep(0.2)
    raise RuntimeError(f"no {what} within {START_TIMEOUT:.0f} s (see the logs)")


def _answers(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return url if response.status == 200 else None
    except (urllib.error.URLError, OSError):
        return None


def _a_session(database_url: str) -> str | None:
    with contextlib.suppress(psycopg.Error), psycopg.connect(database_url, connect_timeout=3) as conn:
        row = conn.execute(
            "SELECT session_id FROM session_metrics WHERE started_at IS NOT NULL "
            "ORDER BY started_at DESC LIMIT 1"
        ).fetchone()
        return None if row is None else str(row[0])
    return None


@contextlib.contextmanager
def _until_signal() -> Iterator[threading.Event]:
    """An event set by SIGINT or SIGTERM, the previous handlers restored afterwards."""
    stopping = threading.Event()

    def handler(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stopping
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
