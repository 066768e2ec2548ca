"""The API's alert routes (/v1/alerts, /v1/alerts/metrics): the alerts as worker/alerts/views.py
reads them for the CLI and the dashboard, behind the same tokens as every /v1 read."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST
from psycopg_pool import ConnectionPool

from worker.alerts import views as alert_views
from worker.alerts.rules import RulesError, RulesFile, load_rules
from worker.alerts.views import Alerts
from worker.read.auth import require_token
from worker.read.params import Limit, reject_unknown_parameters


def _pool(request: Request) -> ConnectionPool[Any]:
    return request.app.state.pool  # type: ignore[no-any-return]


# Module level: with postponed annotations FastAPI resolves route annotations in module globals.
Pool = Annotated[ConnectionPool[Any], Depends(_pool)]

#: As worker/read/api.py's v1: behind the API tokens when there are any.
router = APIRouter(
    dependencies=[Depends(require_token), Depends(reject_unknown_parameters)],
    responses={401: {"description": "no token, or a wrong one, while METRICS_API_TOKENS is set"}},
)


def _alerts_file(request: Request) -> tuple[RulesFile | None, str | None]:
    """The rules of this process's METRICS_ALERTS_FILE (read each time: an edit shows at once), or
    its mistake in one line; (None, None) when none is named."""
    path: str | None = request.app.state.alerts_file
    if not path:
        return None, None
    try:
        return load_rules(path, need_urls=False), None
    except RulesError as exc:
        return None, str(exc)


@router.get("/v1/alerts", response_model=Alerts, tags=["alerts"])
def get_alerts(request: Request, pool: Pool, limit: Limit = 50) -> Alerts:
    """The alert rules (when this process has METRICS_ALERTS_FILE), each rule and label set's state,
    and the latest ``limit`` changes and notifications, newest first (:mod:`worker.alerts.views`,
    what ``metrics-worker alerts list|history`` print)."""
    rules, error = _alerts_file(request)
    with pool.connection() as conn:
        return alert_views.alerts(conn, rules, rules_error=error, limit=limit)


@router.get(
    "/v1/alerts/metrics",
    tags=["alerts"],
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus' text format"}},
)
def get_alert_metrics(pool: Pool) -> PlainTextResponse:
    """``metrics_alert_firing{rule, labels, severity}``: 1 while firing, else 0; for Prometheus (and
    Alertmanager) to scrape, with the API token as a bearer token when tokens are set."""
    with pool.connection() as conn:
        text = alert_views.prometheus(alert_views.states(conn))
    return PlainTextResponse(text, media_type=CONTENT_TYPE_LATEST)
