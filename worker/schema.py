"""Applying schema.sql: idempotent, serialised by an advisory lock so many workers can start at once.

A worker starting next to running ones must not take table locks it does not need (CREATE INDEX
IF NOT EXISTS still locks its table, which deadlocks with applying transactions), so the file's
fingerprint is recorded and a schema already applied is left alone without locking anything.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from contract.exits import NotFound

log = logging.getLogger(__name__)

#: Arbitrary constant shared by every process that applies the schema.
SCHEMA_LOCK_KEY = 0x6D657472_69637331  # "metrics1"

#: The tables the commands read and write: without them, ``metrics-worker schema`` was not run.
TABLES = (
    "session_metrics",
    "round_metrics",
    "tool_call_metrics",
    "forward_request_metrics",
    "execute_sync_mismatch_metrics",
    "applied_counter_events",
    "maintenance_runs",
    "alert_state",
    "alert_history",
    "alert_notifications",
)
MISSING_TABLES_SQL = """
SELECT array_agg(name ORDER BY name), current_database(), current_setting('search_path')
FROM unnest(%s::text[]) AS name WHERE to_regclass(name) IS NULL
"""


class SchemaMissing(NotFound):
    """The database (as the URL's search_path sees it) has not had schema.sql applied."""


def require_schema(conn: psycopg.Connection[Any]) -> None:
    """Raise SchemaMissing, naming the tables, where they were looked for and the fix."""
    row = conn.execute(MISSING_TABLES_SQL, (list(TABLES),)).fetchone()
    if row and row[0]:
        missing, database, search_path = row
        which = "none of the tables" if len(missing) == len(TABLES) else f"no table {', '.join(missing)}"
        raise SchemaMissing(
            f"{which} in database {database} (search_path {search_path}): create them with "
            "`metrics-worker schema` (same DATABASE_URL), or point the URL's search_path at the "
            "schema that has them"
        )


def schema_path() -> Path:
    """The top-level schema.sql, through worker/schema.sql (a symlink to it in a checkout, a copy
    in an installed wheel); override with METRICS_SCHEMA_FILE."""
    override = os.environ.get("METRICS_SCHEMA_FILE")
    return Path(override) if override else Path(__file__).resolve().parent / "schema.sql"


def apply_schema(conn: psycopg.Connection[Any], *, force: bool = False) -> bool:
    """Create whatever is missing, in one transaction, while holding the schema lock.
    Returns False when this exact schema file had been applied already; ``force`` applies it
    anyway (``metrics-worker schema``: it repairs a table dropped since)."""
    path = schema_path()
    try:
        sql = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(
            f"METRICS_SCHEMA_FILE: cannot read the schema file {str(path)!r}: {exc.strerror}"
        ) from None
    digest = hashlib.sha256(sql.encode()).hexdigest()
    with conn.transaction():
        if not force and _is_applied(conn, digest):
            return False
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK_KEY,))
        if not force and _is_applied(conn, digest):  # another process applied it while we waited
            return False
        conn.execute(sql.encode())
        conn.execute("INSERT INTO metrics_schema VALUES (%s, now()) ON CONFLICT DO NOTHING", (digest,))
        pending = conn.execute(
            "SELECT string_agg(entity, ', ') FROM rollup_backfill WHERE NOT done"
        ).fetchone()
    if pending and pending[0]:
        log.warning(
            "the roll-ups do not count the %s written before them yet: run `metrics-worker schema` "
            "to back-fill them (the aggregate reads use the base tables until then)",
            pending[0],
        )
    return True


def _is_applied(conn: psycopg.Connection[Any], digest: str) -> bool:
    table = conn.execute("SELECT to_regclass('metrics_schema')").fetchone()
    if not table or table[0] is None:
        return False
    return conn.execute("SELECT 1 FROM metrics_schema WHERE sha256 = %s", (digest,)).fetchone() is not None


def grant_reader(conn: psycopg.Connection[Any], role: str, password: str | None = None) -> bool:
    """Let ``role`` read (SELECT, nothing else) every table of the current schema, and those created
    in it later by this user: what ``metrics-api`` needs. Creates the role (LOGIN) when it does not
    exist and returns True then; ``password`` (default: env METRICS_READER_PASSWORD) sets its password."""
    password = password or os.environ.get("METRICS_READER_PASSWORD")
    ident = sql.Identifier(role)
    with conn.transaction():
        schema = conn.execute("SELECT current_schema()").fetchone()
        if not schema or schema[0] is None:
            raise ValueError("no current schema to grant on: check search_path in DATABASE_URL")
        target = sql.Identifier(schema[0])
        created = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone() is None
        if created:
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(ident))
        if password:
            conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(ident, sql.Literal(password)))
        for statement in (
            "GRANT USAGE ON SCHEMA {schema} TO {role}",
            "GRANT SELECT ON ALL TABLES IN SCHEMA {schema} TO {role}",
            "ALTER DEFAULT PRIVILEGES IN SCHEMA {schema} GRANT SELECT ON TABLES TO {role}",
        ):
            conn.execute(sql.SQL(statement).format(schema=target, role=ident))
    return created
