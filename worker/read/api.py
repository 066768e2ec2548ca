"""HTTP JSON API over the read side (FastAPI), and the ``metrics-api`` console script.

Every route is one read of :mod:`worker.read.queries` with its filters as query parameters. Mistakes
in parameters are 422 with a message naming the parameter (unknown parameters included, so a
misspelt filter is not silently ignored); a database that cannot be reached is 503.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import date
from typing import Annotated, Any

import psycopg
import uvicorn
from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from psycopg import IsolationLevel
from psycopg_pool import ConnectionPool

from contract import exits
from worker.read import queries
from worker.read.models import (
    DailyMetrics,
    ForwardEndpointMetrics,
    ForwardMetricsSummary,
    ForwardRequestMetrics,
    MetricsSummary,
    ModelMetrics,
    SessionDetail,
    SessionMetrics,
)
from worker.read.queries import DEFAULT_DAYS, DEFAULT_LIMIT, MAX_DAYS, MAX_LIMIT, QueryError
from worker.settings import DEFAULT_DATABASE_URL

log = logging.getLogger(__name__)

StartDate = Annotated[
    date | None, Query(description="First UTC date of started_at, inclusive (YYYY-MM-DD); open if absent.")
]
EndDate = Annotated[
    date | None, Query(description="Last UTC date of started_at, inclusive (YYYY-MM-DD); open if absent.")
]
Model = Annotated[
    str | None,
    Query(min_length=1, max_length=256, description="Only this model; unknown is an empty result."),
]
Endpoint = Annotated[
    str | None, Query(min_length=1, max_length=256, description="Only this upstream endpoint.")
]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description=f"Rows to return, 1..{MAX_LIMIT}.")]
Days = Annotated[int, Query(ge=1, le=MAX_DAYS, description="Days in the window, ending on end_date.")]
WindowEnd = Annotated[date | None, Query(description="Last UTC date of the window; today (UTC) if absent.")]


def _pool(request: Request) -> ConnectionPool[Any]:
    return request.app.state.pool  # type: ignore[no-any-return]


# Module level: with postponed annotations FastAPI resolves route annotations in module globals.
Pool = Annotated[ConnectionPool[Any], Depends(_pool)]


def _reject_unknown_parameters(request: Request) -> None:
    """A misspelt filter (``limt=5``) is a 422, not a silently unfiltered answer."""
    route = request.scope.get("route")
    known = {field.alias for field in getattr(getattr(route, "dependant", None), "query_params", [])}
    unknown = sorted(set(request.query_params) - known)
    if unknown:
        raise HTTPException(
            status_code=422,
            detail=[
                {
                    "loc": ["query", name],
                    "msg": f"unknown query parameter {name!r}; known: {', '.join(sorted(known)) or 'none'}",
                    "type": "unknown_parameter",
                }
                for name in unknown
            ],
        )


def _configured(statement_timeout_ms: int) -> Callable[[psycopg.Connection[Any]], None]:
    def configure(conn: psycopg.Connection[Any]) -> None:
        # Reads never write; one snapshot per request, so a detail's statements agree.
        conn.execute("SELECT set_config('statement_timeout', %s, false)", (str(statement_timeout_ms),))
        conn.commit()
        conn.isolation_level = IsolationLevel.REPEATABLE_READ
        conn.read_only = True

    return configure


def create_app(  # noqa: C901 -- the routes move to an APIRouter soon, which splits this up
    database_url: str | None = None,
    *,
    max_connections: int = 4,
    statement_timeout_ms: int = 30_000,
    pool_timeout: float = 10.0,
    health_timeout: float = 3.0,
) -> FastAPI:
    """The API over ``database_url`` (default: env DATABASE_URL, else the settings' default), its pool
    opened in the lifespan.

    ``pool_timeout``: how long a request waits for a connection before a 503; ``health_timeout``:
    the same for /healthz.
    """
    url = database_url or os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool: ConnectionPool[Any] = ConnectionPool(
            url,
            min_size=1,
            max_size=max_connections,
            open=False,
            timeout=pool_timeout,
            configure=_configured(statement_timeout_ms),
            name="metrics-api",
        )
        pool.open(wait=False)  # start even if the database is away; /healthz says so
        app.state.pool = pool
        try:
            yield
        finally:
            await run_in_threadpool(pool.close)

    app = FastAPI(
        title="Agent metrics API",
        version="1",
        summary="The seed's metrics reads (sessions, rounds, tool calls, forwarded requests) as JSON.",
        lifespan=lifespan,
        dependencies=[Depends(_reject_unknown_parameters)],
    )

    @app.exception_handler(QueryError)
    async def query_error(request: Request, exc: QueryError) -> JSONResponse:
        loc = ["query", exc.param] if exc.param else ["query"]
        return JSONResponse(
            status_code=422, content={"detail": [{"loc": loc, "msg": str(exc), "type": "value_error"}]}
        )

    @app.exception_handler(psycopg.OperationalError)
    async def database_unavailable(request: Request, exc: psycopg.OperationalError) -> JSONResponse:
        log.warning("read failed, database unavailable: %s", exc)
        return JSONResponse(status_code=503, content={"detail": f"database unavailable: {exc}"})

    @app.get("/healthz", tags=["health"], summary="200 if the database answers SELECT 1, else 503")
    def healthz(pool: Pool) -> JSONResponse:
        try:
            with pool.connection(timeout=health_timeout) as conn:
                conn.execute("SELECT 1")
        except psycopg.Error as exc:
            return JSONResponse(
                status_code=503, content={"status": "unavailable", "detail": f"database: {exc}"}
            )
        return JSONResponse(content={"status": "ok"})

    @app.get("/v1/summary", response_model=MetricsSummary, tags=["sessions"])
    def get_summary(pool: Pool, start_date: StartDate = None, end_date: EndDate = None) -> MetricsSummary:
        return queries.summary(pool, start_date=start_date, end_date=end_date)

    @app.get("/v1/models", response_model=list[ModelMetrics], tags=["sessions"])
    def get_models(pool: Pool, start_date: StartDate = None, end_date: EndDate = None) -> list[ModelMetrics]:
        return queries.by_model(pool, start_date=start_date, end_date=end_date)

    @app.get("/v1/sessions", response_model=list[SessionMetrics], tags=["sessions"])
    def get_sessions(
        pool: Pool,
        start_date: StartDate = None,
        end_date: EndDate = None,
        model: Model = None,
        limit: Limit = DEFAULT_LIMIT,
    ) -> list[SessionMetrics]:
        return queries.sessions(pool, start_date=start_date, end_date=end_date, model=model, limit=limit)

    @app.get(
        "/v1/sessions/{session_id:path}",
        response_model=SessionDetail,
        tags=["sessions"],
        responses={404: {"description": "No started session with this id"}},
    )
    def get_session(
        pool: Pool, session_id: Annotated[str, Path(min_length=1, max_length=128)]
    ) -> SessionDetail:
        detail = queries.session_detail(pool, session_id)
        if detail is None:
            raise HTTPException(status_code=404, detail=f"session {session_id!r} not found")
        return detail

    @app.get("/v1/daily", response_model=list[DailyMetrics], tags=["sessions"])
    def get_daily(pool: Pool, days: Days = DEFAULT_DAYS, end_date: WindowEnd = None) -> list[DailyMetrics]:
        return queries.daily_metrics(pool, days=days, end_date=end_date)

    @app.get("/v1/forward/summary", response_model=ForwardMetricsSummary, tags=["forward"])
    def get_forward_summary(
        pool: Pool,
        start_date: StartDate = None,
        end_date: EndDate = None,
        endpoint: Endpoint = None,
        model: Model = None,
    ) -> ForwardMetricsSummary:
        return queries.forward_summary(
            pool, start_date=start_date, end_date=end_date, endpoint=endpoint, model=model
        )

    @app.get("/v1/forward/endpoints", response_model=list[ForwardEndpointMetrics], tags=["forward"])
    def get_forward_endpoints(
        pool: Pool, start_date: StartDate = None, end_date: EndDate = None, model: Model = None
    ) -> list[ForwardEndpointMetrics]:
        return queries.forward_by_endpoint(pool, start_date=start_date, end_date=end_date, model=model)

    @app.get("/v1/forward/requests", response_model=list[ForwardRequestMetrics], tags=["forward"])
    def get_forward_requests(
        pool: Pool,
        start_date: StartDate = None,
        end_date: EndDate = None,
        endpoint: Endpoint = None,
        model: Model = None,
        limit: Limit = DEFAULT_LIMIT,
    ) -> list[ForwardRequestMetrics]:
        return queries.forward_requests(
            pool, start_date=start_date, end_date=end_date, endpoint=endpoint, model=model, limit=limit
        )

    @app.get("/v1/forward/daily", response_model=list[DailyMetrics], tags=["forward"])
    def get_forward_daily(
        pool: Pool, days: Days = DEFAULT_DAYS, end_date: WindowEnd = None
    ) -> list[DailyMetrics]:
        return queries.forward_daily_metrics(pool, days=days, end_date=end_date)

    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="metrics-api",
        description="Serve the agent metrics reads as an HTTP JSON API (OpenAPI at /docs).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    parser.add_argument("--port", type=int, default=8000, help="port to listen on (default: %(default)s)")
    parser.add_argument(
        "--database-url",
        metavar="URL",
        help=f"PostgreSQL URL to read from (env DATABASE_URL; else {DEFAULT_DATABASE_URL})",
    )
    parser.add_argument(
        "--max-connections",
        type=int,
        default=4,
        help="database connections in the pool (default: %(default)s)",
    )
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )

    def serve() -> int:
        app = create_app(args.database_url, max_connections=args.max_connections)
        uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
        return 0

    return exits.run("metrics-api", serve)


if __name__ == "__main__":
    sys.exit(main())
