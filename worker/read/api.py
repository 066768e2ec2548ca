"""The HTTP JSON API over the read side (FastAPI): its routes, assembled by :func:`create_app`.

Every route is one read of :mod:`worker.read.queries` with its filters as query parameters. Mistakes
in parameters are 422 with a message naming the parameter (unknown parameters included, so a
misspelt filter is not silently ignored); a database that cannot be reached, or has no tables yet,
is 503 (the former naming the database's host and the cause, within the connect timeout; the
latter saying to run ``metrics-worker schema``). The ``metrics-api`` console script that serves it
is worker/read/server.py.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Path, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline
from psycopg import IsolationLevel
from psycopg_pool import ConnectionPool

from worker import database
from worker.read import alerts_api, dashboard, failures, queries
from worker.read.auth import TokenCheck, require_token, tokens_from_env
from worker.read.models import (
    CostReport,
    DailyMetrics,
    ForwardDailyMetrics,
    ForwardEndpointMetrics,
    ForwardEndpointStatuses,
    ForwardMetricsSummary,
    ForwardRequestMetrics,
    HourlySeries,
    Latency,
    MetricsSummary,
    ModelMetrics,
    Overview,
    SessionDetail,
    SessionMetrics,
    ToolMetrics,
)
from worker.read.params import (
    After,
    Before,
    Days,
    EndDate,
    Endpoint,
    Hours,
    Limit,
    Model,
    SeriesHours,
    StartDate,
    Top,
    User,
    WindowEnd,
    reject_unknown_parameters,
)
from worker.read.queries import DEFAULT_DAYS, DEFAULT_HOURS, DEFAULT_LIMIT, DEFAULT_TOP
from worker.read.queries._base import check_date_range, hours_instead_of_dates
from worker.schema import SchemaMissing, require_schema
from worker.settings import Connections
from worker.status import UNAVAILABLE, PipelineStatus, StatusSource

log = logging.getLogger(__name__)


def _pool(request: Request) -> ConnectionPool[Any]:
    return request.app.state.pool  # type: ignore[no-any-return]


# Module level: with postponed annotations FastAPI resolves route annotations in module globals.
Pool = Annotated[ConnectionPool[Any], Depends(_pool)]


def _configured(statement_timeout_ms: int) -> Callable[[psycopg.Connection[Any]], None]:
    def configure(conn: psycopg.Connection[Any]) -> None:
        # Reads never write; one snapshot per request, so a detail's statements agree.
        conn.execute("SELECT set_config('statement_timeout', %s, false)", (str(statement_timeout_ms),))
        conn.commit()
        conn.isolation_level = IsolationLevel.REPEATABLE_READ
        conn.read_only = True

    return configure


#: Open to anyone who can reach the port: says only whether the database answers.
router = APIRouter(dependencies=[Depends(reject_unknown_parameters)])
#: The reads: behind the API tokens when there are any (worker/read/auth.py).
v1 = APIRouter(
    dependencies=[Depends(require_token), Depends(reject_unknown_parameters)],
    responses={401: {"description": "no token, or a wrong one, while METRICS_API_TOKENS is set"}},
)


@router.get("/healthz", tags=["health"], summary="200 if the database answers and has the tables, else 503")
def healthz(request: Request, pool: Pool) -> JSONResponse:
    try:
        with pool.connection(timeout=request.app.state.health_timeout) as conn:
            require_schema(conn)
    except psycopg.Error as exc:
        detail = f"database: {failures.why(request, exc)}"
        return JSONResponse(status_code=503, content={"status": "unavailable", "detail": detail})
    except SchemaMissing as exc:
        return JSONResponse(status_code=503, content={"status": "unavailable", "detail": f"database: {exc}"})
    return JSONResponse(content={"status": "ok"})


@v1.get("/v1/summary", response_model=MetricsSummary, tags=["sessions"])
def get_summary(
    pool: Pool, start_date: StartDate = None, end_date: EndDate = None, hours: Hours = None
) -> MetricsSummary:
    return queries.summary(pool, start_date=start_date, end_date=end_date, hours=hours)


@v1.get("/v1/models", response_model=list[ModelMetrics], tags=["sessions"])
def get_models(
    pool: Pool, start_date: StartDate = None, end_date: EndDate = None, hours: Hours = None
) -> list[ModelMetrics]:
    return queries.by_model(pool, start_date=start_date, end_date=end_date, hours=hours)


@v1.get("/v1/sessions", response_model=list[SessionMetrics], tags=["sessions"])
def get_sessions(
    pool: Pool,
    start_date: StartDate = None,
    end_date: EndDate = None,
    model: Model = None,
    limit: Limit = DEFAULT_LIMIT,
    before: Before = None,
    after: After = None,
) -> list[SessionMetrics]:
    return queries.sessions(
        pool, start_date=start_date, end_date=end_date, model=model, limit=limit, before=before, after=after
    )


@v1.get(
    "/v1/sessions/{session_id:path}",
    response_model=SessionDetail,
    tags=["sessions"],
    responses={404: {"description": "No started session with this id"}},
)
def get_session(pool: Pool, session_id: Annotated[str, Path(min_length=1, max_length=128)]) -> SessionDetail:
    detail = queries.session_detail(pool, session_id)
    if detail is None:
        raise HTTPException(status_code=404, detail=f"session {session_id!r} not found")
    return detail


@v1.get("/v1/daily", response_model=list[DailyMetrics], tags=["sessions"])
def get_daily(pool: Pool, days: Days = DEFAULT_DAYS, end_date: WindowEnd = None) -> list[DailyMetrics]:
    return queries.daily_metrics(pool, days=days, end_date=end_date)


@v1.get("/v1/forward/summary", response_model=ForwardMetricsSummary, tags=["forward"])
def get_forward_summary(
    pool: Pool,
    start_date: StartDate = None,
    end_date: EndDate = None,
    endpoint: Endpoint = None,
    model: Model = None,
    hours: Hours = None,
) -> ForwardMetricsSummary:
    return queries.forward_summary(
        pool, start_date=start_date, end_date=end_date, endpoint=endpoint, model=model, hours=hours
    )


@v1.get("/v1/forward/endpoints", response_model=list[ForwardEndpointMetrics], tags=["forward"])
def get_forward_endpoints(
    pool: Pool,
    start_date: StartDate = None,
    end_date: EndDate = None,
    model: Model = None,
    hours: Hours = None,
) -> list[ForwardEndpointMetrics]:
    return queries.forward_by_endpoint(
        pool, start_date=start_date, end_date=end_date, model=model, hours=hours
    )


@v1.get("/v1/forward/requests", response_model=list[ForwardRequestMetrics], tags=["forward"])
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


@v1.get("/v1/forward/daily", response_model=list[ForwardDailyMetrics], tags=["forward"])
def get_forward_daily(
    pool: Pool, days: Days = DEFAULT_DAYS, end_date: WindowEnd = None
) -> list[ForwardDailyMetrics]:
    return queries.forward_daily_metrics(pool, days=days, end_date=end_date)


@v1.get("/v1/overview", response_model=Overview, tags=["dashboard"])
async def get_overview(
    pool: Pool, start_date: StartDate = None, end_date: EndDate = None, hours: Hours = None
) -> Overview:
    """The dashboard's overview in one request: the summary, each day and each tool, for the dates
    (default: the last 7 UTC days, ending today), or, with ``hours``, the summary, each hour
    (``series``) and each tool of the last N UTC hours. The three reads run side by side."""
    if hours is not None:
        now = datetime.now(UTC)  # one window for the three reads, whatever hour they run in
        span = hours_instead_of_dates(hours, start_date, end_date, now)
        assert span is not None
        start_at, end_at = span
        last: dict[str, Any] = {"hours": hours, "now": now}
        summary, series, tools = await asyncio.gather(
            run_in_threadpool(queries.summary, pool, **last),
            run_in_threadpool(queries.hourly_series, pool, **last),
            run_in_threadpool(queries.tool_metrics, pool, **last),
        )
        return Overview(
            start_date=start_at.date(),
            end_date=(end_at - timedelta(microseconds=1)).date(),
            summary=summary,
            daily=[],
            tools=tools,
            hours=hours,
            series=series,
        )
    end = end_date or datetime.now(UTC).date()
    start = start_date or end - timedelta(days=DEFAULT_DAYS - 1)
    check_date_range(start, end)
    dates: dict[str, Any] = {"start_date": start, "end_date": end}
    summary, daily, tools = await asyncio.gather(
        run_in_threadpool(queries.summary, pool, **dates),
        run_in_threadpool(queries.daily_metrics, pool, days=(end - start).days + 1, end_date=end),
        run_in_threadpool(queries.tool_metrics, pool, **dates),
    )
    return Overview(start_date=start, end_date=end, summary=summary, daily=daily, tools=tools)


@v1.get("/v1/tools", response_model=list[ToolMetrics], tags=["sessions"])
def get_tools(
    pool: Pool, start_date: StartDate = None, end_date: EndDate = None, hours: Hours = None
) -> list[ToolMetrics]:
    return queries.tool_metrics(pool, start_date=start_date, end_date=end_date, hours=hours)


@v1.get(
    "/v1/cost",
    response_model=CostReport,
    tags=["cost"],
    summary="What it cost: exact USD (decimal strings) in total, per model, per day, top users and "
    "sessions; unpriced rounds and forwards counted, never $0",
)
def get_cost(
    pool: Pool,
    start_date: StartDate = None,
    end_date: EndDate = None,
    model: Model = None,
    user_id: User = None,
    top: Top = DEFAULT_TOP,
    hours: Hours = None,
) -> CostReport:
    return queries.cost(
        pool, start_date=start_date, end_date=end_date, model=model, user_id=user_id, top=top, hours=hours
    )


@v1.get("/v1/latency", response_model=Latency, tags=["latency"])
def get_latency(
    pool: Pool, start_date: StartDate = None, end_date: EndDate = None, hours: Hours = None
) -> Latency:
    """p50/p90/p95/p99 of round duration and time to first token per model, of tool duration per
    tool, of forward duration and time to first token per endpoint: dates, or the last ``hours``."""
    return queries.latency(pool, start_date=start_date, end_date=end_date, hours=hours)


@v1.get("/v1/series", response_model=HourlySeries, tags=["latency"])
def get_series(pool: Pool, hours: SeriesHours = DEFAULT_HOURS, model: Model = None) -> HourlySeries:
    """Per UTC hour of the last ``hours``: rounds, errors, tokens and round duration percentiles."""
    return queries.hourly_series(pool, hours=hours, model=model)


@v1.get("/v1/forward/statuses", response_model=list[ForwardEndpointStatuses], tags=["forward"])
def get_forward_statuses(
    pool: Pool, start_date: StartDate = None, end_date: EndDate = None, model: Model = None
) -> list[ForwardEndpointStatuses]:
    return queries.forward_statuses(pool, start_date=start_date, end_date=end_date, model=model)


@v1.get(
    "/v1/pipeline",
    response_model=PipelineStatus,
    tags=["pipeline"],
    responses={503: {"description": "Redis does not answer"}},
)
def get_pipeline(request: Request) -> PipelineStatus | JSONResponse:
    """Every shard's backlog, consumers and lag, and the dead letters: ``metrics-worker status --json``
    (:mod:`worker.status`); ``configured`` false without REDIS_URL."""
    source: StatusSource | None = request.app.state.pipeline
    if source is None:
        return PipelineStatus(configured=False)
    try:
        return source.read()
    except UNAVAILABLE as exc:
        log.warning("pipeline read failed, Redis unavailable: %s", exc)
        return JSONResponse(status_code=503, content={"detail": f"redis unavailable: {exc}"})


def create_app(
    database_url: str | None = None,
    *,
    max_connections: int = 4,
    statement_timeout_ms: int = 30_000,
    connect_timeout: timedelta | None = None,
    health_timeout: float = 3.0,
    tokens: Sequence[str] | None = None,
    redis_url: str | None = None,
) -> FastAPI:
    """The API over ``database_url`` (default: env DATABASE_URL, else the settings' default), its pool
    opened in the lifespan.

    ``connect_timeout`` (default: env METRICS_CONNECT_TIMEOUT, else 5s): how long a connect may take,
    and a request may wait for a connection, before a 503; ``health_timeout``: the most /healthz
    waits (never more than the connect timeout). ``tokens``: the API tokens (default: from the
    environment, see :mod:`worker.read.auth`); empty, the reads are open. ``redis_url``: where
    /v1/pipeline reads (default: env REDIS_URL; unset or empty: "not configured"), with the stream,
    shards and group of the environment (METRICS_STREAM, METRICS_SHARDS, METRICS_GROUP).
    """
    settings = Connections.from_env(database_url=database_url, connect_timeout=connect_timeout)
    redis_url = os.environ.get("REDIS_URL") if redis_url is None else redis_url

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = database.Pool(
            settings.database_url,
            settings.connect_timeout,
            min_size=1,
            max_size=max_connections,
            open=False,
            configure=_configured(statement_timeout_ms),
            name="metrics-api",
        )
        pool.open(wait=False)  # start even if the database is away; /healthz says so
        app.state.pool = pool
        try:
            yield
        finally:
            await run_in_threadpool(pool.close)
            if app.state.pipeline is not None:
                app.state.pipeline.close()

    app = FastAPIOffline(  # /docs and /redoc from assets in the fastapi-offline wheel, not a CDN
        title="Agent metrics API",
        version="1",
        summary="The seed's metrics reads (sessions, rounds, tool calls, forwarded requests) as JSON.",
        lifespan=lifespan,
    )

    app.state.alerts_file = os.environ.get("METRICS_ALERTS_FILE") or None
    app.state.health_timeout = min(health_timeout, settings.connect_timeout.total_seconds())
    app.state.pipeline = (
        StatusSource(redis_url, settings.keys, settings.group, settings.connect_timeout.total_seconds())
        if redis_url
        else None
    )
    failures.install(app)
    app.state.token_check = TokenCheck(tokens_from_env() if tokens is None else tokens)
    app.include_router(router)
    app.include_router(v1)
    app.include_router(alerts_api.router)
    dashboard.install(app)
    return app
