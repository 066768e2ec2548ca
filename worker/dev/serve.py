"""``demo --serve``: the demo's pipeline kept up until Ctrl-C, with metrics-api, metrics-otlp (the
OpenTelemetry receiver; a subprocess: the worker does not import the producer) and a slow, steady
simulator, and the exact commands (with the variables they need) to look at it from another
terminal while it runs."""

from __future__ import annotations

import contextlib
import shlex
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path

import psycopg

from contract.urls import mask_url
from worker.dev.embedded import free_port
from worker.dev.processes import BIN, Processes, say, until_signal

TOKEN_VARIABLES = ("METRICS_API_TOKENS", "METRICS_API_TOKENS_FILE")


def script(name: str) -> str:
    """How to call one of the console scripts from here: ``.venv/bin/metrics-worker`` from the
    checkout (nothing says the venv is active), else the absolute path."""
    path = BIN / name
    with contextlib.suppress(ValueError):
        return str(path.relative_to(Path.cwd()))
    return str(path)


def exports(env: Mapping[str, str], *names: str) -> str:
    """``export A=... B=...`` for the variables another shell needs, quoted for it; a password in
    a URL shows as ``***`` (the shell that set it has it)."""
    return "export " + " ".join(f"{n}={shlex.quote(mask_url(env[n]))}" for n in names)


def token_hint(env: Mapping[str, str]) -> str:
    """What the dashboard asks for when the API wants a token (nothing when it is open)."""
    if any(env.get(name) for name in TOKEN_VARIABLES):
        return " (it asks for a token: one of those in METRICS_API_TOKENS or METRICS_API_TOKENS_FILE)"
    return ""


def serve(procs: Processes, env: dict[str, str], schema: str, agents: int, rate: float, port: int) -> int:
    """Start the API, the OpenTelemetry receiver and the simulator next to ``procs``, print how to
    look (and where to send spans), wait for a signal."""
    procs.start("metrics-api", str(BIN / "metrics-api"), "--port", str(port))
    otlp = f"http://127.0.0.1:{free_port()}"
    procs.start("metrics-otlp", str(BIN / "metrics-otlp"), "--port", otlp.rsplit(":", 1)[1])
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
        procs.wait_for("metrics-api to answer", lambda: _answers(f"{api}/healthz"))
        procs.wait_for("metrics-otlp to answer", lambda: _answers(f"{otlp}/healthz"))
        session_id = procs.wait_for("a first session to be applied", lambda: _a_session(env["DATABASE_URL"]))
    except RuntimeError as exc:
        say(str(exc))
        return 1
    print(_how_to_look(env, api, otlp, schema, session_id), flush=True)
    with until_signal() as stopping:
        while not stopping.wait(1.0):
            dead = procs.stopped()
            if dead:
                say(f"these stopped (see their logs): {', '.join(dead)}")
                return 1
    say("stopping (Ctrl-C)")
    return 0


def _how_to_look(env: dict[str, str], api: str, otlp: str, schema: str, session_id: str) -> str:
    worker = script("metrics-worker")
    tokens = [t.strip() for t in env.get("METRICS_API_TOKENS", "").split(",") if t.strip()]
    # the token itself stays in this shell's variable: the line names it, never prints it
    curl_auth = '-H "Authorization: Bearer $METRICS_API_TOKENS" ' if len(tokens) == 1 else ""
    if len(tokens) > 1 or (not tokens and env.get("METRICS_API_TOKENS_FILE")):
        curl_auth = '-H "Authorization: Bearer YOUR_TOKEN" '
    return "\n".join(
        [
            "",
            "The pipeline runs until Ctrl-C. In a browser:",
            f"  {api}/   the dashboard{token_hint(env)}",
            f"  {api}/docs   the API's documentation",
            f"  {api}/v1/sessions",
            f"  {otlp}/healthz   metrics-otlp, the OpenTelemetry receiver",
            f"OpenTelemetry in: point an instrumented agent at it with OTEL_EXPORTER_OTLP_ENDPOINT={otlp}",
            "In another terminal (the variables first; the commands need them):",
            "  " + exports(env, "DATABASE_URL", "REDIS_URL", "METRICS_STREAM"),
            f"  {worker} query sessions --limit 10",
            f"  {worker} query session {session_id}",
            f"  {worker} query summary",
            f"  {worker} query forward-summary",
            f"  {worker} status",
            f"  curl -s {curl_auth}{api}/v1/summary",
            f"The data stays in schema {schema}: `python3 tasks.py demo --serve --schema {schema}` "
            "brings it back.",
            "",
        ]
    )


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
