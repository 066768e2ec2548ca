"""The demo command, as a new user runs it: embedded servers, short traffic, results, nothing left behind."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import psycopg
import pytest

from worker.dev.embedded import EmbeddedServers
from worker.dev.scratch import with_search_path

pytestmark = pytest.mark.acceptance


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for status in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            cmdline = status.read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
        except OSError:
            continue
        if text in cmdline and str(os.getpid()) not in status.parts[2]:
            found.append(cmdline)
    return found


def test_demo_on_embedded_servers(tmp_path: Path) -> None:
    data_dir = tmp_path / "demo"
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    done = subprocess.run(
        [sys.executable, "-m", "worker.dev.demo", "--duration", "3", "--data-dir", str(data_dir)],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:] + done.stdout[-2000:]
    assert "started an embedded PostgreSQL" in done.stderr and "started an embedded Redis" in done.stderr
    assert "stopped every process the demo started" in done.stderr
    printed = int(re.search(r"│ sessions\s+│ ([\d,]+)", done.stdout).group(1).replace(",", ""))
    tool_calls = int(re.search(r"│ tool calls\s+│ ([\d,]+)", done.stdout).group(1).replace(",", ""))
    assert printed > 0
    assert not _processes_mentioning(str(data_dir)), "the demo left processes behind"

    # The summary it printed is what the database holds.
    embedded = EmbeddedServers(data_dir)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            url = embedded.start_postgres()
        schema = re.search(r"PostgreSQL schema (demo_\d+)", done.stderr).group(1)  # this run's own
        with psycopg.connect(with_search_path(url, schema)) as conn:
            sessions, tools = conn.execute(
                "SELECT count(*), COALESCE(sum(tool_call_count), 0) FROM session_metrics "
                "WHERE started_at IS NOT NULL"
            ).fetchone()
        assert (sessions, tools) == (printed, tool_calls)
    finally:
        embedded.close()
