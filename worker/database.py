"""How every command opens its PostgreSQL connection: one connect, bounded by the connect timeout.

``metrics-worker schema``, ``query``, ``reconcile``, ``prune`` and the API's pool connect here, so a
URL that reaches something other than PostgreSQL fails within seconds (not libpq's two minutes),
naming the host, the port and the cause (worker/errors.py).
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from worker.errors import PostgresError, Unreachable, connect_failed, where


def timeout_seconds(timeout: timedelta) -> int:
    """libpq's connect_timeout: whole seconds, at least 1 (0 would mean wait for ever)."""
    return max(1, math.ceil(timeout.total_seconds()))


def connect(url: str, timeout: timedelta, **kwargs: Any) -> psycopg.Connection[Any]:
    """An autocommit connection to ``url`` (``kwargs`` to psycopg), or a PostgresError saying where
    and why not: Unreachable (exit 3), DatabaseMissing (exit 2, with how to create it)."""
    seconds = timeout_seconds(timeout)
    try:
        return psycopg.connect(url, autocommit=True, connect_timeout=seconds, **kwargs)
    except psycopg.OperationalError as exc:
        raise connect_failed(exc, url, seconds) from exc


class Pool(ConnectionPool[psycopg.Connection[Any]]):
    """The API's pool: each connect bounded by the connect timeout, and the last failure kept, so
    a request that waited in vain says where and why (:meth:`unavailable`)."""

    def __init__(self, url: str, timeout: timedelta, **kwargs: Any) -> None:
        self.url = url
        self.connect_seconds = timeout_seconds(timeout)
        self.last_failure: PostgresError | None = None
        super().__init__(
            url,
            timeout=timeout.total_seconds(),
            kwargs={"connect_timeout": self.connect_seconds},
            **kwargs,
        )

    def _connect(self, timeout: float | None = None) -> psycopg.Connection[Any]:
        try:
            conn = super()._connect(timeout)
        except psycopg.OperationalError as exc:
            self.last_failure = connect_failed(exc, self.url, self.connect_seconds)
            raise
        self.last_failure = None
        return conn

    def unavailable(self) -> PostgresError:
        """Why no connection came: the last connect's failure, else where nothing answered."""
        if self.last_failure is not None:
            return self.last_failure
        return Unreachable(
            f"cannot connect to {where(self.url)}: no connection within {self.connect_seconds}s"
        )
