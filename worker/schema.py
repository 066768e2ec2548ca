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

log = logging.getLogger(__name__)

#: Arbitrary constant shared by every process that applies the schema.
SCHEMA_LOCK_KEY = 0x6D657472_69637331  # "metrics1"


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
