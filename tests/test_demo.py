"""The demo command, as a new user runs it: embedded servers, short traffic, results, nothing left behind."""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
import uuid
import warnings
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.conftest import Services
from worker.dev.embedded import EmbeddedServers
from worker.dev.scratch import with_search_path

pytestmark = pytest.mark.acceptance
ROOT = Path(__file__).resolve().parent.parent


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
            round_seconds = conn.execute(
                "SELECT percentile_cont(0.5) WITHIN GROUP "
                "(ORDER BY extract(epoch FROM completed_at - started_at)) FROM round_metrics"
            ).fetchone()[0]
        assert (sessions, tools) == (printed, tool_calls)
        assert round_seconds > 1  # rounds of seconds, not the 0 ms of calls made back to back
    finally:
        embedded.close()


def _processes_with_env(entry: str) -> list[str]:
    """Processes whose environment holds ``entry`` (``NAME=value``)."""
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if entry.encode() in environ.read_bytes().split(b"\0"):
                found.append(environ.parent.name)
        except OSError:
            continue
    return found


def test_demo_serve_keeps_it_up_and_its_printed_commands_work(services: Services, tmp_path: Path) -> None:
    """--serve, as a user runs it: wait for the block it prints, run every command of it from
    "another terminal" (a fresh environment plus its export line), then Ctrl-C."""
    schema = f"demo_serve_{uuid.uuid4().hex[:8]}"
    env = dict(os.environ, DATABASE_URL=services.database_url, REDIS_URL=services.redis_url)
    err = (tmp_path / "stderr").open("w")
    demo = subprocess.Popen(
        [sys.executable, "-m", "worker.dev.demo", "--serve", "--schema", schema, "--data-dir", str(tmp_path)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=err,
        text=True,
        cwd=ROOT,
        start_new_session=True,  # a terminal of its own: Ctrl-C below goes to its whole group
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(demo.stdout), daemon=True)  # type: ignore[arg-type]
    reader.start()
    try:
        deadline = time.monotonic() + 150
        while not any(line.startswith("The data stays in schema") for line in lines):
            assert demo.poll() is None, (tmp_path / "stderr").read_text()
            assert time.monotonic() < deadline, "no commands printed within 150 s"
            time.sleep(0.2)
        printed = [line.strip() for line in lines]
        (export,) = [line for line in printed if line.startswith("export ")]
        shell = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "COLUMNS")}
        for assignment in shlex.split(export)[1:]:
            name, value = assignment.split("=", 1)
            shell[name] = value
        commands = [line for line in printed if "metrics-worker " in line or line.startswith("curl ")]
        assert len(commands) >= 5, printed
        for line in commands:
            argv = shlex.split(line)
            if argv[0] == "curl":
                response = httpx.get(argv[-1], timeout=10)
                assert response.status_code == 200 and response.json()["total_sessions"] > 0, line
                continue
            shown = subprocess.run(
                argv, env=shell, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
            )
            assert shown.returncode == 0 and shown.stdout.strip(), (line, shown.stderr)
        urls = [line.split()[0] for line in printed if line.startswith("http://")]
        (dashboard,) = [line.split()[0] for line in printed if line.endswith("the dashboard")]
        assert urls[0] == dashboard and dashboard.endswith("/"), printed  # the first URL shown
        for url in urls:
            assert httpx.get(url, timeout=10).status_code == 200, url
        assert demo.poll() is None, "the demo stopped on its own"
        os.killpg(demo.pid, signal.SIGINT)  # Ctrl-C, as a terminal sends it: to the whole group
        assert demo.wait(timeout=60) == 0, (tmp_path / "stderr").read_text()
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
        reader.join(10)
        demo.stdout.close()  # type: ignore[union-attr]
        err.close()
    said = (tmp_path / "stderr").read_text()
    assert "stopped every process the demo started" in said
    assert "Traceback" not in said and "KeyboardInterrupt" not in said, said
    # The first thing it says is where the dashboard will be.
    assert said.splitlines()[0].startswith(f"demo: the dashboard will be at {dashboard} "), said
    assert not _processes_with_env(f"METRICS_STREAM={schema}:events"), "the demo left processes behind"
    with psycopg.connect(services.database_url, autocommit=True) as admin:
        admin.execute(f'DROP SCHEMA "{schema}" CASCADE')


def test_ctrl_c_under_tasks_py_ends_quietly_with_the_childs_answer(tmp_path: Path) -> None:
    """tasks.py waits for its child through Ctrl-C: no KeyboardInterrupt traceback of its own, and
    its exit status is the child's (here one that cleans up, then exits 0)."""
    ready = tmp_path / "ready"
    child = (
        "import pathlib, signal, sys, time\n"
        "signal.signal(signal.SIGINT, lambda *_: (print('child: cleaned up', flush=True), sys.exit(0)))\n"
        f"pathlib.Path({str(ready)!r}).touch()\n"
        "time.sleep(60)\n"
    )
    driver = (
        "import sys; sys.path.insert(0, sys.argv[1]); import tasks; "
        "sys.exit(tasks.run(sys.executable, '-c', sys.argv[2]))"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", driver, str(ROOT), child],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not ready.exists():
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert out == "child: cleaned up\n" and "Traceback" not in err, (out, err)
