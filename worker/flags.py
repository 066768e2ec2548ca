"""The flags ``metrics-worker`` commands share, read with the environment into a command's settings.

Each connection flag is written once here and added to the commands that use it
(:func:`add_connections`); :func:`settings_from` is the one way from a command's flags and the
environment to its settings (worker/settings.py).
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import fields
from typing import Any, TypeVar

from contract.durations import duration_arg
from worker.settings import DEFAULT_DATABASE_URL, DEFAULT_REDIS_URL, Connections

S = TypeVar("S", bound=Connections)

#: name -> (flag, add_argument keywords); dest is the setting's name, so settings_from finds it.
_CONNECTION_FLAGS: dict[str, tuple[str, dict[str, Any]]] = {
    "database_url": (
        "--database-url",
        {"metavar": "URL", "help": f"PostgreSQL [env DATABASE_URL, default {DEFAULT_DATABASE_URL}]"},
    ),
    "redis_url": (
        "--redis-url",
        {"metavar": "URL", "help": f"Redis [env REDIS_URL, default {DEFAULT_REDIS_URL}]"},
    ),
    "stream": (
        "--stream",
        {"metavar": "NAME", "help": "stream name [env METRICS_STREAM, default metrics:events]"},
    ),
    "shards": (
        "--shards",
        {"type": int, "metavar": "K", "help": "number of stream shards [env METRICS_SHARDS, default 1]"},
    ),
    "group": (
        "--group",
        {"metavar": "NAME", "help": "consumer group [env METRICS_GROUP, default metrics-workers]"},
    ),
    "connect_timeout": (
        "--connect-timeout",
        {
            "type": duration_arg("--connect-timeout"),
            "metavar": "DURATION",
            "help": "how long reaching PostgreSQL or Redis may take, e.g. 5s "
            "[env METRICS_CONNECT_TIMEOUT, default 5s]",
        },
    ),
}

DATABASE = ("database_url", "connect_timeout")
REDIS = ("redis_url", "stream", "shards", "group", "connect_timeout")
BOTH = ("database_url", *REDIS)


def add_connections(parser: argparse.ArgumentParser, names: tuple[str, ...] = BOTH) -> None:
    """The connection flags ``names`` (only those the command uses: a flag shown must do
    something), and --verbose."""
    group = parser.add_argument_group("connections (flags override the environment)")
    for name in names:
        flag, keywords = _CONNECTION_FLAGS[name]
        group.add_argument(flag, dest=name, **keywords)
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG")


def settings_from(args: argparse.Namespace, kind: type[S]) -> S:
    """``kind`` from the environment and the command's flags: a flag the command has beats its
    variable, and an error names that flag (not one of another command)."""
    given = vars(args)
    return kind.from_env(**{f.name: given[f.name] for f in fields(kind) if f.name in given})


def configure_logging(args: argparse.Namespace) -> None:
    """Log lines on stderr: DEBUG with --verbose, else INFO."""
    logging.basicConfig(
        level=logging.DEBUG if getattr(args, "verbose", False) else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
