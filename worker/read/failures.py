"""What a failed read answers, for every route of the API (worker/read/api.py installs it).

A mistake in the parameters is 422 naming the parameter; a database that cannot be reached is 503
naming its host and the cause (a wait for the pool in vain says where and why); a database without
the tables is 503 saying to run ``metrics-worker schema``.
"""

from __future__ import annotations

import logging

import psycopg
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from psycopg_pool import PoolTimeout

from worker.read.queries import QueryError

log = logging.getLogger(__name__)


async def _query_error(request: Request, exc: QueryError) -> JSONResponse:
    loc = ["query", exc.param] if exc.param else ["query"]
    return JSONResponse(
        status_code=422, content={"detail": [{"loc": loc, "msg": str(exc), "type": "value_error"}]}
    )


def why(request: Request, exc: psycopg.Error) -> str:
    """A database failure in one line: a wait for the pool in vain says where and why."""
    if isinstance(exc, PoolTimeout):
        return " ".join(str(request.app.state.pool.unavailable()).split())
    return " ".join(str(exc).split())


async def _database_unavailable(request: Request, exc: psycopg.OperationalError) -> JSONResponse:
    reason = why(request, exc)
    log.warning("read failed, database unavailable: %s", reason)
    return JSONResponse(status_code=503, content={"detail": f"database unavailable: {reason}"})


async def _no_tables(request: Request, exc: psycopg.errors.UndefinedTable) -> JSONResponse:
    """A read on a database that :func:`healthz` would call unready: say what creates the tables."""
    reason = str(exc).splitlines()[0]
    log.warning("read failed, %s", reason)
    return JSONResponse(
        status_code=503,
        content={"detail": f"database not ready: {reason}; create the tables with `metrics-worker schema`"},
    )


def install(app: FastAPI) -> None:
    app.add_exception_handler(QueryError, _query_error)  # type: ignore[arg-type]
    app.add_exception_handler(psycopg.OperationalError, _database_unavailable)  # type: ignore[arg-type]
    app.add_exception_handler(psycopg.errors.UndefinedTable, _no_tables)  # type: ignore[arg-type]
