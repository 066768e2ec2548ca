"""What the README shows is what runs: its non-Python publishing example, through a real worker."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import psycopg
import redis

from tests.ingest.helpers import drain, settings

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_xadd_example_is_applied(
    db_url: str, redis_url: str, key_prefix: str, redis_client: redis.Redis, conn: psycopg.Connection
) -> None:
    block = README.read_text().split("<!-- readme-xadd -->", 1)[1]
    command = re.search(r"```sh\n(.*?)\n```", block, re.DOTALL).group(1)
    argv = shlex.split(command)
    assert argv[:2] == ["redis-cli", "XADD"]
    s = settings(db_url, redis_url, key_prefix)
    redis_client.execute_command("XADD", s.stream, *argv[3:])  # the README's stream is the default one
    drain(s)
    assert conn.execute(
        "SELECT model, started_at = '2026-02-10T10:00:00Z' FROM session_metrics "
        "WHERE session_id = 's-from-shell'"
    ).fetchone() == ("gpt-4o", True)


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
