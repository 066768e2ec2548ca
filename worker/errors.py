"""The project's own exceptions, and the one place where driver errors are translated into them.

Callers need one distinction: retry the same batch later (the database is away, busy or chose
us as a deadlock victim) or stop retrying it (PostgreSQL refuses the data itself).
"""

from __future__ import annotations

import psycopg


class PostgresError(Exception):
    """PostgreSQL failed a unit of work (a batch the engine applies, a chunk of a maintenance run);
    nothing of it was committed."""


class TransientError(PostgresError):
    """Retry the whole batch or chunk: deadlock, serialization failure, lost connection, restart."""


class PermanentError(PostgresError):
    """The batch holds data PostgreSQL refuses (e.g. a sum out of bigint range); retrying won't help."""


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
