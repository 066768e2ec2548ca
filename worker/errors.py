"""The project's own exceptions, and the one place where driver errors are translated into them.

Callers need one distinction: retry the same batch later (the database is away, busy or chose
us as a deadlock victim) or stop retrying it (PostgreSQL refuses the data itself).
"""

from __future__ import annotations

import psycopg
from psycopg import errors as pgerrors


class ApplyError(Exception):
    """Applying a batch failed; nothing of it was committed."""


class TransientError(ApplyError):
    """Retry the whole batch: deadlock, serialization failure, lost connection, server restart."""


class PermanentError(ApplyError):
    """The batch holds data PostgreSQL refuses (e.g. a sum out of bigint range); retrying won't help."""


# SQLSTATE classes that are about the server or the connection, never about the data.
_TRANSIENT_CLASSES = ("08", "40", "53", "57", "58")  # connection, rollback, resources, operator, system
_TRANSIENT_TYPES = (pgerrors.LockNotAvailable, pgerrors.QueryCanceled)


def translate(exc: psycopg.Error) -> ApplyError:
    """Classify a psycopg error; a lost connection (no SQLSTATE) is transient."""
    if isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError)) and not exc.sqlstate:
        return TransientError(f"database unreachable: {exc}")
    state = exc.sqlstate or ""
    if state[:2] in _TRANSIENT_CLASSES or isinstance(exc, _TRANSIENT_TYPES):
        return TransientError(f"{type(exc).__name__} ({state}): {exc}")
    return PermanentError(f"{type(exc).__name__} ({state}): {exc}")
