"""The query CLI: tables by default, the API's JSON with --json, one-line errors with exit statuses."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from tests.conftest import Services
from tests.read.conftest import Filled
from worker import cli
from worker.dev.scratch import with_search_path


def main(argv: Sequence[str]) -> int:
    """``metrics-worker query ...`` in this process."""
    return cli.main(["query", *argv])


def _json(value: BaseModel | list[Any]) -> Any:
    if isinstance(value, list):
        return [item.model_dump(mode="json") for item in value]
    return value.model_dump(mode="json")


@pytest.fixture
def url(scenario: Filled, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("DATABASE_URL", scenario.url)
    return scenario.url


def test_json_output_of_every_read(url: str, scenario: Filled, capsys: pytest.CaptureFixture[str]) -> None:
    o = scenario.oracle
    cases: list[tuple[list[str], Any]] = [
        (["summary", "--start-date", "2026-02-02", "--end-date", "2026-02-06"],
         o.summary(date(2026, 2, 2), date(2026, 2, 6))),
        (["by-model"], o.by_model()),
        (["sessions", "--model", "gpt-4", "--limit", "4"], o.sessions(model="gpt-4", limit=4)),
        (["sessions", "--limit", "3", "--before", o.sessions(limit=2)[-1].session_id],
         o.sessions(limit=5)[2:]),
        (["session", "s010"], o.session_detail("s010")),
        (["daily", "--days", "4", "--end-date", "2026-02-08"], o.daily(4, date(2026, 2, 8))),
        (["forward_summary", "--model", "gpt-4"], o.forward_summary(model="gpt-4")),
        (["forward-endpoints"], o.forward_by_endpoint()),
        (["forward-requests", "--endpoint", "anthropic.messages", "--limit", "2"],
         o.forward_requests(2, endpoint="anthropic.messages")),
        (["forward-daily", "--days", "10", "--end-date", "2026-02-10"],
         o.forward_daily(10, date(2026, 2, 10))),
    ]  # fmt: skip
    for argv, expected in cases:
        assert main([*argv, "--json"]) == 0, argv
        assert json.loads(capsys.readouterr().out) == _json(expected), argv


@pytest.mark.parametrize(
    ("argv", "shows"),
    [
        (["summary"], ["Summary", "sessions", "60", "last_message_id"]),
        (["by_model"], ["By model", "gpt-4", "claude-3"]),
        (["sessions", "--limit", "3"], ["Sessions (3)", "s0"]),
        (["session_detail", "s010"], ["Session s010", "s010-rstub", "s010-tstub", "Tool calls"]),
        (["daily_metrics", "--days", "3", "--end-date", "2026-02-03"], ["Daily", "2026-02-03"]),
        (["forward_summary"], ["Forwarded requests", "80"]),
        (["forward_by_endpoint"], ["By endpoint", "openai.responses"]),
        (["forward_requests", "--limit", "5"], ["Forwarded requests (5)", "f0"]),
        (["forward_daily_metrics", "--end-date", "2026-02-10"], ["Forwarded requests per day", "2026-02-10"]),
    ],
)
def test_tables_by_default(
    url: str, capsys: pytest.CaptureFixture[str], argv: list[str], shows: list[str]
) -> None:
    assert main(argv) == 0
    out = capsys.readouterr().out
    for text in shows:
        assert text in out


def test_a_filter_mistake_is_one_line_and_status_2(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sessions", "--start-date", "2026-02-10", "--end-date", "2026-02-01"]) == 2
    err = capsys.readouterr().err
    assert err == (
        "metrics-worker: end_date 2026-02-01 is before start_date 2026-02-10; both are "
        "inclusive UTC dates, pass an end_date on or after the start_date\n"
    )


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["sessions", "--limit", "1001"], "argument --limit: must be between 1 and 1000, got 1001"),
        (["forward_requests", "--limit", "x"], "argument --limit: not a whole number: 'x'"),
        (["daily", "--days", "0"], "argument --days: must be between 1 and 3660, got 0"),
        (
            ["summary", "--start-date", "yesterday"],
            "argument --start-date: not a date (YYYY-MM-DD): 'yesterday'",
        ),
        (["nonsense"], "invalid choice: 'nonsense'"),
        (
            ["sessions", "--before", "s001", "--after", "s002"],
            "argument --after: not allowed with argument --before",
        ),
        # Bytes a shell passes that are not UTF-8 arrive surrogate-escaped: a traceback before.
        (["sessions", "--model", "a\udcffb"], "argument --model: 'a\\udcffb' is not valid UTF-8 text"),
        (["session_detail", "s\udcff"], "is not valid UTF-8 text"),
        (
            ["forward_requests", "--endpoint", "a\x00b"],
            "contains a NUL character",
        ),
    ],
)
def test_bad_arguments_are_usage_errors(
    url: str, capsys: pytest.CaptureFixture[str], argv: list[str], says: str
) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert says in capsys.readouterr().err


def test_a_page_from_no_session_is_one_line_and_status_2(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["sessions", "--before", "nope"]) == 2
    assert capsys.readouterr().err == (
        "metrics-worker: before 'nope' is no started session: page from a listed session's id\n"
    )


def test_a_session_not_found_is_status_1(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["session_detail", "ghost"]) == 1
    assert capsys.readouterr().err.startswith("metrics-worker: session 'ghost' not found")


def test_a_database_that_is_away_is_one_line_and_status_3(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["summary", "--database-url", "postgresql://postgres@127.0.0.1:1/none?connect_timeout=1"]) == 3
    )
    err = capsys.readouterr().err
    assert err.startswith("metrics-worker: PostgreSQL: ") and err.count("\n") == 1
    assert err.endswith("(check --database-url / DATABASE_URL)\n")


def test_a_database_without_the_tables_is_status_1_and_says_what_to_check(
    services: Services, capsys: pytest.CaptureFixture[str]
) -> None:
    url = with_search_path(services.database_url, "no_tables_here")  # a schema that does not exist
    assert main(["summary", "--database-url", url]) == 1
    err = capsys.readouterr().err
    assert err.startswith("metrics-worker: none of the tables in database ")
    assert err.count("\n") == 1
    assert "search_path no_tables_here" in err and "create them with `metrics-worker schema`" in err


def test_a_flag_beats_the_variable(
    scenario: Filled, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://postgres@127.0.0.1:1/none")
    assert main(["sessions", "--limit", "2", "--json", "--database-url", scenario.url]) == 0
    assert json.loads(capsys.readouterr().out) == _json(scenario.oracle.sessions(limit=2))


def test_runs_as_the_console_script(scenario: Filled) -> None:
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "metrics-worker"),
            "query",
            "forward_summary",
            "--json",
            "--database-url",
            scenario.url,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # a one-shot command prints its answer and nothing else
    assert json.loads(done.stdout) == scenario.oracle.forward_summary().model_dump(mode="json")
