"""Applying schema.sql: idempotent, serialised by an advisory lock so many workers can start at once."""

from __future__ import annotations

import os
from pathlib import Path

import psycopg

#: Arbitrary constant shared by every process that applies the schema.
SCHEMA_LOCK_KEY = 0x6D657472_69637331  # "metrics1"


def schema_path() -> Path:
    """schema.sql at the project root (override with METRICS_SCHEMA_FILE)."""
    override = os.environ.get("METRICS_SCHEMA_FILE")
    return Path(override) if override else Path(__file__).resolve().parent.parent / "schema.sql"


def apply_schema(conn: psycopg.Connection[object]) -> None:
    """Create whatever is missing, in one transaction, while holding the schema lock."""
    sql = schema_path().read_text(encoding="utf-8")
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK_KEY,))
        conn.execute(sql.encode())
