"""--help reads as one manual: every command says what it does, every argument what it is, a
variable and its default always as ``[env VAR, default X]``, --verbose apart from the connections."""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator

import pytest

from producer.cli import build_parser as producer_parser
from producer.otlp.server import build_parser as otlp_parser
from worker.cli import build_parser as worker_parser
from worker.read.server import build_parser as api_parser

ENV_STYLE = re.compile(r"\[env [A-Z_]+(?: / [A-Z_]+)?, default [^\]]+\]")


def _commands(parser: argparse.ArgumentParser, path: str) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            seen: set[int] = set()
            for name, sub in action.choices.items():
                if id(sub) not in seen:  # an alias is the same parser
                    seen.add(id(sub))
                    yield from _commands(sub, f"{path} {name}")


ALL = [
    *_commands(worker_parser(), "metrics-worker"),
    *_commands(producer_parser(), "metrics-producer"),
    *_commands(api_parser(), "metrics-api"),
    *_commands(otlp_parser(), "metrics-otlp"),
]


@pytest.mark.parametrize(("path", "parser"), ALL, ids=[path for path, _ in ALL])
def test_every_command_and_argument_is_described(path: str, parser: argparse.ArgumentParser) -> None:
    assert parser.description, f"{path}: no description"
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction | argparse._SubParsersAction):
            continue
        name = "/".join(action.option_strings) or action.dest
        assert action.help, f"{path} {name}: no help"
        assert "(env " not in action.help, f"{path} {name}: {action.help}"
        if "env " in action.help:
            assert ENV_STYLE.search(action.help), f"{path} {name}: {action.help}"
    for group in parser._action_groups:
        if group.title and group.title.startswith("connection"):
            assert all("--verbose" not in a.option_strings for a in group._group_actions), path


def test_query_names_are_the_readmes() -> None:
    (query,) = [p for path, p in ALL if path == "metrics-worker query"]
    names = next(a for a in query._actions if isinstance(a, argparse._SubParsersAction))
    primary = {a.dest for a in names._choices_actions}
    assert primary == {
        "summary", "by-model", "sessions", "session", "daily", "forward-summary", "forward-endpoints",
        "forward-requests", "forward-daily", "cost", "latency", "series", "tools",
    }  # fmt: skip


def test_each_command_shows_the_connection_flags_it_uses_and_no_other() -> None:
    """Written once (worker/flags.py), added where used: a flag shown must do something."""
    flags = {path: {o for a in p._actions for o in a.option_strings} for path, p in ALL}
    assert {"--database-url", "--connect-timeout"} <= flags["metrics-worker query sessions"]
    assert "--redis-url" not in flags["metrics-worker query sessions"]
    assert "--redis-url" not in flags["metrics-worker schema"]
    assert "--database-url" not in flags["metrics-worker status"]
    assert "--database-url" not in flags["metrics-worker dlq list"]
    for path in ("metrics-worker run", "metrics-worker prune", "metrics-worker reconcile"):
        assert {"--database-url", "--redis-url", "--stream", "--shards", "--connect-timeout"} <= flags[path]
    assert {"--database-url", "--redis-url", "--stream", "--connect-timeout"} <= flags[
        "metrics-worker forget"
    ]
    assert not {"--shards", "--group"} & flags["metrics-worker forget"]  # hints are named by the stream
    assert "--connect-timeout" in flags["metrics-api"]
