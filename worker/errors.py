"""The project's own exceptions, and the one place where driver errors are translated into them.

Callers need one distinction: retry the same batch later (the database is away, busy or chose
us as a deadlock victim) or stop retrying it (PostgreSQL refuses the data itself). A console
script also needs the exit code and the fix: each class says them (contract/exits.py).
"""

from __future__ import annotations

import psycopg
from psycopg.conninfo import conninfo_to_dict

from contract.exits import CommandError, ExitCode

_CHECK_DATABASE = " (check --database-url / DATABASE_URL)"


class PostgresError(CommandError):
    """PostgreSQL failed a unit of work (a batch the engine applies, a chunk of a maintenance run);
    nothing of it was committed."""

    prefix = "PostgreSQL refused it: "


class TransientError(PostgresError):
    """Retry the whole batch or chunk: deadlock, serialization failure, lost connection, restart."""

    exit_code = ExitCode.UNAVAILABLE
    prefix = "PostgreSQL: "


class PermanentError(PostgresError):
    """The batch holds data PostgreSQL refuses (e.g. a sum out of bigint range); retrying won't help."""


class Unreachable(TransientError):
    """Nothing answered as PostgreSQL at the URL's host and port within the connect timeout."""

    hint = _CHECK_DATABASE


class DatabaseMissing(PostgresError):
    """The server answered, but the URL's database does not exist: a mistake in the command."""

    exit_code = ExitCode.USAGE
    prefix = "PostgreSQL: "
    hint = _CHECK_DATABASE


class TablesMissing(PostgresError):
    """A statement met a table that is not there: schema.sql was not applied where it looked."""

    prefix = "PostgreSQL: "
    hint = ": create the tables with `metrics-worker schema`, or point DATABASE_URL's search_path at them"


# The SQLSTATE classes that are about the data itself: a data exception (22: out of range,
# invalid text...), an integrity constraint (23), a program limit (54: a row too big). Anything
# else is about the server, the connection or the database's state (a read-only standby after a
# failover 25006, a table dropped or renamed 42P01, a permission revoked 42501): retrying later
# is right, and dead-lettering every good event of the batch, as a refusal, would be wrong.
_DATA_CLASSES = ("22", "23", "54")


def translate(exc: psycopg.Error) -> PostgresError:
    """Classify a psycopg error; a lost connection (no SQLSTATE) is transient."""
    if isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError)) and not exc.sqlstate:
        return TransientError(f"database unreachable: {exc}")
    state = exc.sqlstate or ""
    if state[:2] in _DATA_CLASSES:
        return PermanentError(f"{type(exc).__name__} ({state}): {exc}")
    return TransientError(f"{type(exc).__name__} ({state}): {exc}")


def postgres_failure(exc: Exception) -> PostgresError | None:
    """A psycopg error as a console script reports it (contract.exits.run's ``translate``): a
    missing table says what creates it, a connection lost is "retry later", any other refusal
    fails the command. None for anything else."""
    if isinstance(exc, psycopg.errors.UndefinedTable):
        return TablesMissing(str(exc))
    if isinstance(exc, psycopg.OperationalError):
        return Unreachable(str(exc))
    if isinstance(exc, psycopg.Error):
        return PostgresError(str(exc))
    return None


def where(url: str) -> str:
    """``host:port`` (or the socket directory) a URL names, for messages; never its password."""
    try:
        info = conninfo_to_dict(url)
    except psycopg.Error:
        return "?"
    host = str(info.get("host") or "the local socket")
    return f"{host}:{info.get('port') or 5432}"


def connect_failed(exc: psycopg.OperationalError, url: str, timeout: float) -> PostgresError:
    """A failed connect as a person can act on: where, why, and what to do."""
    at = where(url)
    text = str(exc)
    if 'database "' in text and "does not exist" in text:
        name = conninfo_to_dict(url).get("dbname") or "?"
        return DatabaseMissing(
            f'database "{name}" does not exist on {at}; create it with `createdb {name}` '
            f'(or CREATE DATABASE "{name}"), or name another'
        )
    if isinstance(exc, psycopg.errors.ConnectionTimeout) or "timeout expired" in text:
        cause = f"no PostgreSQL answer within {timeout:g}s (is something else listening there?)"
    else:
        cause = " ".join(text.removeprefix("connection failed: ").split())
    return Unreachable(f"cannot connect to {at}: {cause}")
