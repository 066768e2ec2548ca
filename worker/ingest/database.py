"""The Worker's PostgreSQL connection: opened on first use, with its options; let go when broken.

One connection per worker, in autocommit (the engine opens its own transactions). A failure to
connect comes out as the project's own error (worker/errors.py), so the Worker tells "retry
later" from "this is wrong" in one place.
"""

from __future__ import annotations

import contextlib
from datetime import timedelta
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict

from worker import database

#: The longest a batch waits for a row lock. Workers hold theirs for milliseconds; past this
#: something else holds one (a session in an editor, a stuck job), and the batch is retried with
#: backoff instead, which also lets SIGTERM end the worker within seconds.
LOCK_TIMEOUT = "3s"

#: How long to wait for PostgreSQL to answer a connection attempt before retrying with backoff.
DEFAULT_CONNECT_TIMEOUT = timedelta(seconds=5)


def with_lock_timeout(database_url: str) -> str:
    """The URL's own ``options`` (a search_path, say) plus the worker's lock_timeout."""
    options = conninfo_to_dict(database_url).get("options") or ""
    return f"{options} -c lock_timeout={LOCK_TIMEOUT}".strip()


class Database:
    """The connection of one worker (``name`` shows in pg_stat_activity), opened again after a loss."""

    def __init__(self, url: str, name: str, connect_timeout: timedelta = DEFAULT_CONNECT_TIMEOUT) -> None:
        self.url = url
        self.name = name[:63]  # PostgreSQL's limit for application_name
        self.connect_timeout = connect_timeout
        self._conn: psycopg.Connection[Any] | None = None

    def connection(self) -> psycopg.Connection[Any]:
        """The open connection, connecting first if there is none, as every command connects
        (worker/database.py): Unreachable (retried like any transient error) or another
        PostgresError naming host, port and cause (a database that does not exist stops the worker
        with how to create it)."""
        if self._conn is None or self._conn.closed:
            self._conn = database.connect(
                self.url,
                self.connect_timeout,
                application_name=self.name,
                options=with_lock_timeout(self.url),
            )
        return self._conn

    def drop_if_broken(self) -> None:
        """After a failure: forget the connection if it is lost, so the next use opens a new one."""
        if self._conn is not None and (self._conn.closed or self._conn.broken):
            self.close()

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._conn.close()
            self._conn = None
