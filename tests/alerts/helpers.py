"""A real HTTP server that receives webhooks (stdlib http.server in a thread), and rules files."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psycopg

from worker.alerts.rules import RulesFile, parse_rules


@dataclass
class Hooks:
    """What the server received, by path (and when: ``arrivals``, Unix times); ``answers`` sets a
    path's status (default 200) and ``delays`` how long it waits before answering."""

    url: str
    received: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    hits: dict[str, int] = field(default_factory=dict)
    answers: dict[str, int] = field(default_factory=dict)
    delays: dict[str, float] = field(default_factory=dict)
    arrivals: dict[str, list[float]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def bodies(self, path: str) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.received.get(path, []))

    def times(self, path: str) -> list[float]:
        with self.lock:
            return list(self.arrivals.get(path, []))


@contextmanager
def webhook_server() -> Iterator[Hooks]:
    hooks = Hooks("")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            arrived = time.time()
            length = int(self.headers.get("Content-Length", 0))
            data = json.loads(self.rfile.read(length))
            time.sleep(hooks.delays.get(self.path, 0))
            status = hooks.answers.get(self.path, 200)
            with hooks.lock:
                hooks.hits[self.path] = hooks.hits.get(self.path, 0) + 1
                if status < 300:
                    hooks.received.setdefault(self.path, []).append(data)
                    hooks.arrivals.setdefault(self.path, []).append(arrived)
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    hooks.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield hooks
    finally:
        server.shutdown()
        server.server_close()


def rules_file(text: str, env: dict[str, str]) -> RulesFile:
    import tomllib

    return parse_rules(tomllib.loads(text), "alerts.toml", env)


NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def fill_sixty_days(conn: psycopg.Connection[Any]) -> None:
    """60 days of rows before NOW (90,000 each of rounds, sessions, tool calls, forwards), analysed."""
    conn.execute(
        """
        INSERT INTO round_metrics (round_id, session_id, model, started_at, completed_at, status,
                                   total_tokens, completion_version)
        SELECT 'r' || g, 's' || g, 'm' || (g % 5), %(now)s - g * interval '1 minute',
               %(now)s - g * interval '1 minute', CASE WHEN g % 7 = 0 THEN 'error' ELSE 'success' END, 10, 'x'
        FROM generate_series(1, 90000) AS g;
        INSERT INTO session_metrics (session_id, model, started_at, status, updated_at)
        SELECT 's' || g, 'm' || (g % 5), %(now)s - g * interval '1 minute', 'completed', %(now)s
        FROM generate_series(1, 90000) AS g;
        INSERT INTO tool_call_metrics (tool_call_id, round_id, session_id, tool_name, started_at, success)
        SELECT 't' || g, 'r' || g, 's' || g, 'tool' || (g % 5), %(now)s - g * interval '1 minute', g % 3 > 0
        FROM generate_series(1, 90000) AS g;
        INSERT INTO forward_request_metrics (forward_id, endpoint, model, started_at, status, updated_at)
        SELECT 'f' || g, 'e' || (g % 3), 'm' || (g % 5), %(now)s - g * interval '1 minute', 'success', %(now)s
        FROM generate_series(1, 90000) AS g;
        ANALYZE round_metrics, session_metrics, tool_call_metrics, forward_request_metrics;
        """.replace("%(now)s", "'2026-03-10 12:00+00'::timestamptz")
    )


def readme_block(marker: str, language: str) -> str:
    """The code block after ``<!-- marker -->`` in the README."""
    text = (Path(__file__).parents[2] / "README.md").read_text()
    found = re.match(rf"\s*```{language}\n(.*?)\n```", text.split(f"<!-- {marker} -->", 1)[1], re.DOTALL)
    assert found
    return found.group(1)
