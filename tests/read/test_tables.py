"""Tables for people: fitted to the terminal without ever wrapping or cutting an id, a header on
every one, CSV from every read, and a short id that `query session` opens."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import uuid6
from rich.console import Console

from tests.conftest import Services
from tests.read.conftest import Filled, filled_schema
from tests.read.events import Events, usage
from worker import cli, tables
from worker.read import grids
from worker.read.cli import READS
from worker.read.models import SessionMetrics, TokenUsage

BIN = Path(sys.executable).parent
START = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


def main(argv: list[str]) -> int:
    """``metrics-worker query ...`` in this process."""
    return cli.main(["query", *argv])


def _session(session_id: str, model: str = "claude-sonnet-4", tools: int = 3) -> SessionMetrics:
    return SessionMetrics(
        session_id=session_id,
        model=model,
        started_at=START,
        completed_at=START + timedelta(seconds=95),
        total_rounds=12,
        total_token_usage=TokenUsage(prompt_tokens=812_000, completion_tokens=9_100, total_tokens=821_100),
        tool_call_count=17,
        prompt_cached_tool_outputs=4,
        total_compression_events=1,
        total_tokens_saved=40_000,
        tool_breakdown={f"tool_{i}": i + 1 for i in range(tools)},
        status="awaiting_response",
        message_count=25,
        duration_ms=95_000,
    )


def _drawn(grid_list: list[tables.Grid], width: int | None) -> str:
    out = io.StringIO()
    tables.print_tables(grid_list, Console(file=out, force_terminal=False), width)
    return out.getvalue()


def _header(text: str) -> str:
    """The header row(s) of the first table drawn: between its top rule and the rule under it."""
    lines = text.splitlines()
    top = next(i for i, line in enumerate(lines) if line.startswith("┏"))
    under = next(i for i, line in enumerate(lines) if line.startswith("┡"))
    return "\n".join(lines[top + 1 : under])


def _ids_shown(text: str, ids: list[str]) -> list[str]:
    """Each id as the table shows it: whole, or its tail after an ellipsis; fails if neither."""
    shown = []
    for session_id in ids:
        if session_id in text:
            shown.append(session_id)
            continue
        tail = tables.ELLIPSIS + session_id[-tables.SHORT_ID :]
        assert tail in text, f"{session_id} neither whole nor as {tail} in\n{text}"
        shown.append(tail)
    return shown


@pytest.mark.parametrize("width", [60, 80, 100, 132, None])
def test_ids_are_never_wrapped_or_cut_at_any_width(width: int | None) -> None:
    ids = [str(uuid6.uuid7()) for _ in range(5)]
    text = _drawn(grids.sessions([_session(i) for i in ids]), width)
    if width is not None:
        assert max(len(line) for line in text.splitlines()) <= width, text
    _ids_shown(text, ids)
    assert "session" in _header(text)


def test_a_wide_terminal_shows_everything_whole() -> None:
    ids = [str(uuid6.uuid7()) for _ in range(3)]
    text = _drawn(grids.sessions([_session(i) for i in ids]), None)
    assert all(i in text for i in ids) and "tool_0 1, tool_1 2, tool_2 3" in text
    assert "not shown" not in text


def test_at_80_columns_other_columns_give_way_before_ids_are_shortened() -> None:
    ids = [str(uuid.uuid4()) for _ in range(3)]
    fitted = tables.fit(grids.sessions([_session(i) for i in ids])[0], 80)
    assert tables.table_width(fitted.widths) <= 80
    assert fitted.headers[0] == "session" and fitted.left_out, fitted
    assert "tools" in fitted.left_out and "started" in fitted.headers  # least important go first


def test_middle_truncation_keeps_both_ends() -> None:
    assert tables.middle("claude-sonnet-4-20250514", 10) == "claud…0514"
    assert tables.middle("short", 10) == "short"
    assert len(tables.middle("x" * 50, 8)) == 8


def test_every_table_has_a_header_and_pairs_tables_a_title(
    scenario: Filled, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", scenario.url)
    monkeypatch.setenv("COLUMNS", "80")
    for read in READS:
        argv = [read.name, *(["s010"] if "session_id" in read.filters else [])]
        assert main(argv) == 0, argv
        out = capsys.readouterr().out
        assert max(len(line) for line in out.splitlines()) <= 80, (argv, out)
        assert out.splitlines()[0].strip(), (argv, out)  # a title first
        if "┡" in out:  # pairs tables (field, value) have no header; every other one has
            assert _header(out).strip("┃ \n"), (argv, out)
        else:
            assert read.name in ("summary", "forward-summary"), (argv, out)


def test_csv_from_every_read(
    scenario: Filled, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", scenario.url)
    for read in READS:
        argv = [read.name, *(["s010"] if "session_id" in read.filters else [])]
        assert main([*argv, "--json"]) == 0
        as_json = json.loads(capsys.readouterr().out)
        assert main([*argv, "--csv"]) == 0
        sections = capsys.readouterr().out.split("\n\n")
        first = list(csv.reader(io.StringIO(sections[0])))
        header, rows = first[0], first[1:]
        assert all(len(row) == len(header) for row in rows), argv
        if isinstance(as_json, list):
            assert len(rows) == len(as_json), argv
        elif read.name in ("latency", "series"):  # an object whose first list is the first table
            assert len(rows) == len(as_json["models" if read.name == "latency" else "points"]), argv
        else:
            assert len(rows) == 1, argv
    assert main(["session", "s010", "--csv"]) == 0
    _, rounds, calls, forwards = capsys.readouterr().out.split("\n\n")
    assert next(csv.reader(io.StringIO(rounds)))[0] == "round"
    assert next(csv.reader(io.StringIO(forwards)))[0] == "forward"
    assert "s010-tstub" in calls  # a tool call whose round never arrived is listed too


def test_csv_values_are_machine_readable(
    scenario: Filled, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", scenario.url)
    assert main(["sessions", "--limit", "5", "--csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    for row in rows:
        datetime.fromisoformat(row["started"])
        int(row["total tokens"])  # no thousands separators
        assert isinstance(json.loads(row["tools"] or "{}"), dict)


def test_forward_outcomes_add_up_to_the_requests(
    scenario: Filled, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", scenario.url)
    assert main(["forward-summary", "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    parts = ("successful_requests", "failed_requests", "timed_out_requests", "pending_requests")
    assert s["timed_out_requests"] > 0 and s["pending_requests"] > 0  # the scenario has both
    assert sum(s[p] for p in parts) == s["total_requests"]
    assert main(["forward-daily", "--days", "30", "--end-date", "2026-02-20", "--json"]) == 0
    days = json.loads(capsys.readouterr().out)
    assert days and all(
        d["requests"] == d["successful"] + d["failed"] + d["timed_out"] + d["pending"] for d in days
    )
    assert "total_sessions" not in days[0]  # the seed's name for it no longer leaks
    assert main(["forward-summary"]) == 0
    assert re.search(r"timed out\s+│\s+\d+", capsys.readouterr().out)


# -- the console script, at 80 columns, with real UUIDv7 ids ------------------------------------


@pytest.fixture(scope="module")
def uuid_sessions(services: Services) -> Iterator[tuple[str, list[str]]]:
    ev = Events()
    ids = [str(uuid6.uuid7()) for _ in range(6)]
    for n, session_id in enumerate(ids):
        at = START + timedelta(minutes=n)
        ev.session_started(session_id, "claude-sonnet-4-20250514", at)
        round_id = str(uuid6.uuid7())
        ev.round_started(round_id, session_id, "claude-sonnet-4-20250514", at)
        ev.tool_started(f"{round_id}-t", round_id, session_id, "read_file", at + timedelta(seconds=1))
        ev.tool_completed(f"{round_id}-t", round_id, session_id, at + timedelta(seconds=2))
        ev.round_completed(round_id, session_id, at + timedelta(seconds=9), usage(12_000, 800))
        ev.session_completed(session_id, "completed", at + timedelta(seconds=10))
    for twin in ("alpha-cafe0001", "beta-cafe0001"):
        ev.session_started(twin, "gpt-4o", START)
    with filled_schema(services, ev.events) as url:
        yield url, ids


def _cli(url: str, *argv: str, columns: str | None = "80") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    env["DATABASE_URL"] = url
    if columns:
        env["COLUMNS"] = columns
    return subprocess.run(
        [str(BIN / "metrics-worker"), "query", *argv],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.acceptance
def test_list_then_open_at_80_columns(uuid_sessions: tuple[str, list[str]]) -> None:
    url, ids = uuid_sessions
    listed = _cli(url, "sessions")
    assert listed.returncode == 0, listed.stderr
    assert max(len(line) for line in listed.stdout.splitlines()) <= 80, listed.stdout
    for shown in _ids_shown(listed.stdout, ids):
        opened = _cli(url, "session", shown)
        assert opened.returncode == 0, (shown, opened.stderr)
        assert max(len(line) for line in opened.stdout.splitlines()) <= 80, opened.stdout
        assert any(i in opened.stdout for i in ids), opened.stdout  # the title names the whole id


@pytest.mark.acceptance
def test_piped_output_is_not_squeezed(uuid_sessions: tuple[str, list[str]]) -> None:
    url, ids = uuid_sessions
    listed = _cli(url, "sessions", columns=None)
    assert listed.returncode == 0, listed.stderr
    assert all(i in listed.stdout for i in ids) and "not shown" not in listed.stdout


def test_a_short_id_that_names_several_sessions_says_so(
    uuid_sessions: tuple[str, list[str]], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url, ids = uuid_sessions
    monkeypatch.setenv("DATABASE_URL", url)
    assert main(["session", "…" + ids[0][-8:], "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["session"]["session_id"] == ids[0]
    assert main(["session", "...nothing-ends-so"]) == 1
    assert "not found" in capsys.readouterr().err
    assert main(["session", "cafe0001"]) == 1  # the end of two sessions' ids
    err = capsys.readouterr().err
    assert "several" in err and "give more of it" in err and "alpha-cafe0001" in err


@pytest.mark.parametrize("width", [60, 200])
def test_prose_wraps_at_its_spaces_and_is_never_cut_mid_word(width: int) -> None:
    """A dead letter's reason (dlq list) is read, not scanned: whole words over more lines."""
    reason = (
        "contract: round.completed has prompt_tokens -3, which is below 0 (a count cannot be negative); "
        "the producer of agent checkout-bot sent it at 2026-03-02T09:30:00Z " * 2
    ).strip()
    grid = tables.Grid(
        "1 dead letters in metrics:events:dead",
        (
            tables.Column("id", "label"),
            tables.Column("from (stream/entry)", "text", 1),
            tables.Column("reason", "prose"),
        ),
        (("1767225600000-0", "metrics:events/1767225600000-0", reason),),
    )
    console = Console(file=io.StringIO(), width=width)
    tables.print_tables([grid], console, width)
    out = console.file.getvalue()  # type: ignore[attr-defined]
    assert max(len(line) for line in out.splitlines()) <= width
    shown = " ".join(line.split("│")[-2].strip() for line in out.splitlines() if line.count("│") >= 3)
    assert shown.split() == reason.split()  # every word, whole, in order: nothing cut
