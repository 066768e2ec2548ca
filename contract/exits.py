"""How every console script ends: its exit codes, an error told in one line with its own code.

    0  OK           done
    1  FAILED       the command ran and did not do it: a job failed, lines were rejected, what it
                    names does not exist (a session, a dead letter)
    2  USAGE        a mistake in the command: a flag, a setting, a filter, an input file, a request
                    Redis refuses, a database that does not exist (argparse's own errors exit 2 too)
    3  UNAVAILABLE  Redis or PostgreSQL could not be reached (or the events wait in the spool):
                    the same command may succeed later

``metrics-worker``, ``metrics-producer`` and ``metrics-api`` run their command through :func:`run`,
which prints a known error as one line (``prog: message``) and returns its code; anything else is
a bug and keeps its traceback. An error is known when its class says its code (a
:class:`CommandError`: the project's own errors, each with its code and hint) or when it is a
ValueError (settings and flags: the message names them). A driver's errors are made known by the
translators a script passes: Redis's by contract/connect.py, psycopg's by worker/errors.py (the
one place each driver's errors are translated); this module imports neither driver.

Here because it is the one package that the producer and the worker may both import.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import ClassVar, NoReturn


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


class CommandError(Exception):
    """An error a console script reports in one line: the class says the exit code, what goes
    before the message (``prefix``) and after it (``hint``, the fix)."""

    exit_code: ClassVar[ExitCode] = ExitCode.FAILED
    prefix: ClassVar[str] = ""
    hint: ClassVar[str] = ""


class NotFound(CommandError, LookupError):
    """What the command names does not exist (a session, a dead letter)."""


@dataclass(frozen=True)
class Report:
    """How one error is told: its exit code, and the text around its message."""

    code: ExitCode
    prefix: str = ""
    hint: str = ""


def report_for(exc: BaseException) -> Report | None:
    """The report of an error a script knows; None for a bug (which keeps its traceback)."""
    if isinstance(exc, CommandError):
        return Report(exc.exit_code, exc.prefix, exc.hint)
    if isinstance(exc, ValueError):  # settings and flags: the message names them
        return Report(ExitCode.USAGE)
    return None


#: Turns a driver's error into a CommandError; None for an error it does not know.
Translate = Callable[[Exception], "CommandError | None"]


def run(prog: str, command: Callable[[], int], *translators: Translate) -> int:
    """``command()``'s exit status; a known error (as it is, or as the first of ``translators``
    that knows it makes it) is one line on stderr and its code."""
    try:
        return int(command())
    except Exception as exc:
        error: BaseException = next(filter(None, (t(exc) for t in translators)), exc)
        report = report_for(error)
        if report is None:
            raise
        print(f"{prog}: {report.prefix}{one_line(error)}{report.hint}", file=sys.stderr)
        return report.code


def one_line(exc: BaseException) -> str:
    message = exc.args[0] if isinstance(exc, LookupError) and exc.args else exc
    return " ".join(str(message).split())
