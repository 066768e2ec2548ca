"""Exit codes of every console script, and the one table from error class to exit code.

    0  OK           done
    1  FAILED       the command ran and did not do it: a job failed, lines were rejected, what it
                    names does not exist (a session, a dead letter)
    2  USAGE        a mistake in the command: a flag, a setting, a filter, an input file, a request
                    Redis refuses (argparse's own errors exit 2 too)
    3  UNAVAILABLE  Redis or PostgreSQL could not be reached (or the events wait in the spool):
                    the same command may succeed later

``metrics-worker``, ``metrics-producer``, ``metrics-api`` and the ``python -m`` entry points run
their command through :func:`run`, which prints an error the table knows as one line
(``prog: message``) and returns its code; anything else is a bug and keeps its traceback.

Here because it is the one package that the producer and the worker may both import. The table
names classes by module and name, looked up in ``sys.modules`` when an error happens: contract
imports neither side (nor their drivers), and a class whose module was never imported cannot
have been raised.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import NoReturn


class ExitCode(IntEnum):
    OK = 0
    FAILED = 1
    USAGE = 2
    UNAVAILABLE = 3


class Parser(argparse.ArgumentParser):
    """argparse with a one-line error, ``prog: message (see prog --help)``, and USAGE; its
    subparsers are Parsers too. Every console script builds its command line with it."""

    def error(self, message: str) -> NoReturn:
        self.exit(ExitCode.USAGE, f"{self.prog}: {message} (see {self.prog} --help)\n")


class NotFound(LookupError):
    """What the command names does not exist (a session, a dead letter)."""


@dataclass(frozen=True)
class Rule:
    module: str
    name: str
    code: ExitCode
    prefix: str = ""  # before the error's message
    hint: str = ""  # after it

    def matches(self, exc: BaseException) -> bool:
        cls = getattr(sys.modules.get(self.module), self.name, None)
        return isinstance(cls, type) and isinstance(exc, cls)


_CHECK_REDIS = " (check --redis-url / REDIS_URL)"
_CHECK_DATABASE = " (check --database-url / DATABASE_URL)"

#: First match wins: the more specific class first.
EXIT_CODES: tuple[Rule, ...] = (
    Rule("contract.exits", "NotFound", ExitCode.FAILED),
    Rule("worker.read.queries._base", "QueryError", ExitCode.USAGE),  # a filter (a ValueError too)
    Rule("builtins", "ValueError", ExitCode.USAGE),  # settings and flags: the message names them
    Rule("redis.exceptions", "ResponseError", ExitCode.USAGE, "Redis refused it: "),
    Rule("redis.exceptions", "RedisError", ExitCode.UNAVAILABLE, "Redis: ", _CHECK_REDIS),
    Rule("redis.exceptions", "RedisClusterException", ExitCode.UNAVAILABLE, "Redis Cluster: ", _CHECK_REDIS),
    Rule("worker.errors", "TransientError", ExitCode.UNAVAILABLE, "PostgreSQL: "),  # retried first
    Rule("worker.errors", "PostgresError", ExitCode.FAILED, "PostgreSQL refused it: "),
    Rule(
        "psycopg.errors",
        "UndefinedTable",
        ExitCode.FAILED,
        "PostgreSQL: ",
        ": create the tables with `metrics-worker schema`, or point DATABASE_URL's search_path at them",
    ),
    Rule("psycopg", "OperationalError", ExitCode.UNAVAILABLE, "PostgreSQL: ", _CHECK_DATABASE),
    Rule("psycopg", "Error", ExitCode.FAILED, "PostgreSQL: "),
)


def rule_for(exc: BaseException) -> Rule | None:
    return next((rule for rule in EXIT_CODES if rule.matches(exc)), None)


def run(prog: str, command: Callable[[], int]) -> int:
    """``command()``'s exit status; an error of the table is one line on stderr and its code."""
    try:
        return int(command())
    except Exception as exc:
        rule = rule_for(exc)
        if rule is None:
            raise
        print(f"{prog}: {rule.prefix}{one_line(exc)}{rule.hint}", file=sys.stderr)
        return rule.code


def one_line(exc: BaseException) -> str:
    message = exc.args[0] if isinstance(exc, LookupError) and exc.args else exc
    return " ".join(str(message).split())
