"""The HTTP API through its real ASGI app (lifespan, pool, routing, validation) over a real database."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import BaseModel
from starlette.exceptions import StarletteDeprecationWarning

with warnings.catch_warnings():
    # Starlette 1.x wants httpx2 for its test client and warns when it falls back to httpx (what
    # the test extras install). Harmless here; silenced at this one import, not suite-wide.
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

from tests.conftest import Services
from tests.read.conftest import Filled
from worker.dev.scratch import with_search_path
from worker.read.api import create_app
from worker.read.dashboard import DOCS_POLICY


@pytest.fixture(scope="module")
def client(scenario: Filled) -> Iterator[TestClient]:
    with TestClient(create_app(scenario.url)) as test_client:
        yield test_client


def _json(value: BaseModel | list[Any]) -> Any:
    if isinstance(value, list):
        return [item.model_dump(mode="json") for item in value]
    return value.model_dump(mode="json")


def test_health_checks_the_database(client: TestClient) -> None:
    response = client.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


def test_every_read_is_served_with_its_filters(client: TestClient, scenario: Filled) -> None:
    o = scenario.oracle
    d1, d2 = date(2026, 2, 2), date(2026, 2, 6)
    dates = {"start_date": "2026-02-02", "end_date": "2026-02-06"}
    cases: list[tuple[str, dict[str, Any], Any]] = [
        ("/v1/summary", {}, o.summary()),
        ("/v1/summary", dates, o.summary(d1, d2)),
        ("/v1/models", dates, o.by_model(d1, d2)),
        ("/v1/sessions", {}, o.sessions()),
        ("/v1/sessions", {**dates, "model": "gpt-4", "limit": 3}, o.sessions(d1, d2, "gpt-4", 3)),
        ("/v1/sessions/s010", {}, o.session_detail("s010")),
        ("/v1/daily", {"days": 5, "end_date": "2026-02-06"}, o.daily(5, d2)),
        (
            "/v1/forward/summary",
            {"endpoint": "anthropic.messages"},
            o.forward_summary(endpoint="anthropic.messages"),
        ),
        (
            "/v1/forward/endpoints",
            {**dates, "model": "gpt-4"},
            o.forward_by_endpoint(start=d1, end=d2, model="gpt-4"),
        ),
        ("/v1/forward/requests", {"limit": 5, "model": "o1-mini"}, o.forward_requests(5, model="o1-mini")),
        ("/v1/forward/daily", {"days": 10, "end_date": "2026-02-10"}, o.forward_daily(10, date(2026, 2, 10))),
    ]
    for path, params, expected in cases:
        response = client.get(path, params=params)
        assert response.status_code == 200, (path, response.text)
        assert response.json() == _json(expected), path


def test_an_unknown_model_is_an_empty_result(client: TestClient) -> None:
    assert client.get("/v1/sessions", params={"model": "no-such-model"}).json() == []
    assert client.get("/v1/forward/endpoints", params={"model": "no-such-model"}).json() == []


def test_sessions_page_by_keyset(client: TestClient, scenario: Filled) -> None:
    every = scenario.oracle.sessions(None, None, None, 1000)
    first = client.get("/v1/sessions", params={"limit": 5}).json()
    older = client.get("/v1/sessions", params={"limit": 5, "before": first[-1]["session_id"]}).json()
    newer = client.get("/v1/sessions", params={"limit": 5, "after": older[0]["session_id"]}).json()
    assert first + older == _json(every[:10]) and newer == first


def test_a_missing_or_not_started_session_is_404(client: TestClient) -> None:
    for session_id in ("no-such-session", "ghost"):
        response = client.get(f"/v1/sessions/{session_id}")
        assert response.status_code == 404
        assert response.json() == {"detail": f"session {session_id!r} not found"}


@pytest.mark.parametrize(
    ("path", "params", "where", "says"),
    [
        (
            "/v1/summary",
            {"start_date": "2026-02-10", "end_date": "2026-02-09"},
            "end_date",
            "end_date 2026-02-09 is before start_date 2026-02-10",
        ),
        (
            "/v1/forward/requests",
            {"start_date": "2026-02-10", "end_date": "2026-02-01"},
            "end_date",
            "is before",
        ),
        ("/v1/sessions", {"limit": 0}, "limit", "greater than or equal to 1"),
        ("/v1/sessions", {"limit": 1001}, "limit", "less than or equal to 1000"),
        ("/v1/forward/requests", {"limit": "many"}, "limit", "valid integer"),
        ("/v1/daily", {"days": 0}, "days", "greater than or equal to 1"),
        ("/v1/forward/daily", {"days": 100000}, "days", "less than or equal to"),
        ("/v1/summary", {"start_date": "10/02/2026"}, "start_date", "valid date"),
        ("/v1/sessions", {"model": ""}, "model", "at least 1 character"),
        ("/v1/sessions", {"limt": 5}, "limt", "unknown query parameter 'limt'"),
        ("/v1/sessions", {"before": "nope"}, "before", "before 'nope' is no started session"),
        ("/v1/sessions", {"before": "s001", "after": "s002"}, "before", "before and after both given"),
        # PostgreSQL text cannot hold NUL: these were 500s.
        ("/v1/sessions", {"model": "a\x00b"}, "model", "NUL"),
        ("/v1/forward/requests", {"endpoint": "a\x00b"}, "endpoint", "NUL"),
        ("/v1/forward/summary", {"model": "x\x00"}, "model", "NUL"),
        ("/v1/sessions/a%00b", {}, "session_id", "NUL"),
    ],
)
def test_bad_parameters_are_422_naming_the_parameter(
    client: TestClient, path: str, params: dict[str, Any], where: str, says: str
) -> None:
    response = client.get(path, params=params)
    assert response.status_code == 422, response.text
    (error,) = response.json()["detail"]
    assert error["loc"] == ["query", where]
    assert says in error["msg"]


def test_the_openapi_document_lists_every_route(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert set(paths) == {
        "/healthz",
        "/v1/summary",
        "/v1/models",
        "/v1/sessions",
        "/v1/sessions/{session_id}",
        "/v1/daily",
        "/v1/forward/summary",
        "/v1/forward/endpoints",
        "/v1/forward/requests",
        "/v1/forward/daily",
        "/v1/overview",
        "/v1/tools",
        "/v1/forward/statuses",
        "/v1/latency",
        "/v1/series",
        "/v1/pipeline",
        "/v1/alerts",
        "/v1/alerts/metrics",
        "/v1/cost",
    }
    limit = next(p for p in paths["/v1/sessions"]["get"]["parameters"] if p["name"] == "limit")
    assert (limit["schema"]["minimum"], limit["schema"]["maximum"], limit["schema"]["default"]) == (
        1,
        1000,
        100,
    )


@pytest.mark.parametrize("listening", [False, True], ids=["refused", "silent"])
def test_a_database_that_is_away_is_503_within_the_connect_timeout_naming_its_host(listening: bool) -> None:
    """Refused at once, or a port where something accepts and never speaks: either way the answer
    comes within the connect timeout and says where and why."""
    with contextlib.ExitStack() as stack:
        port = 1
        if listening:
            server = stack.enter_context(socket.create_server(("127.0.0.1", 0)))
            port = server.getsockname()[1]  # accepted by the kernel's backlog, never answered
        app = create_app(f"postgresql://postgres@127.0.0.1:{port}/none", connect_timeout=timedelta(seconds=1))
        away = stack.enter_context(TestClient(app))
        started = time.monotonic()
        health = away.get("/healthz")
        read = away.get("/v1/summary")
        took = time.monotonic() - started
    assert took < 2 * (1 + 1.5), took  # two requests, each its timeout and a margin; not 10 s each
    assert health.status_code == 503 and health.json()["status"] == "unavailable"
    assert f"cannot connect to 127.0.0.1:{port}" in health.json()["detail"]
    assert read.status_code == 503 and read.json()["detail"].startswith("database unavailable")
    assert f"127.0.0.1:{port}" in read.json()["detail"]
    cause = "no PostgreSQL answer within 1s" if listening else "Connection refused"
    assert cause in read.json()["detail"], read.json()


@pytest.mark.acceptance
def test_the_api_checks_only_its_own_settings(scenario: Filled) -> None:
    """A worker's setting out of range (METRICS_BATCH_SIZE=0) or a prune one (METRICS_RETENTION=1h)
    is not the API's business: it starts and serves /healthz."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "METRICS_BATCH_SIZE": "0", "METRICS_RETENTION": "1h", "DATABASE_URL": scenario.url}
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "metrics-api"), "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
                break
            except httpx.TransportError:
                assert server.poll() is None, server.communicate()[1].decode()
                assert time.monotonic() < deadline, "metrics-api did not start listening in 20 s"
                time.sleep(0.1)
        assert response.status_code == 200 and response.json() == {"status": "ok"}
    finally:
        server.terminate()
        server.communicate(timeout=10)


def test_a_database_without_the_tables_is_503_and_says_what_creates_them(services: Services) -> None:
    url = with_search_path(services.database_url, "no_tables_here")  # a schema that does not exist
    with TestClient(create_app(url)) as bare:
        health = bare.get("/healthz")
        assert health.status_code == 503 and health.json()["status"] == "unavailable"
        assert "none of the tables" in health.json()["detail"]
        assert "`metrics-worker schema`" in health.json()["detail"]
        read = bare.get("/v1/summary")
        assert read.status_code == 503
        assert read.json()["detail"].startswith("database not ready: relation ")
        assert read.json()["detail"].endswith("create the tables with `metrics-worker schema`")


@pytest.mark.acceptance
def test_the_console_script_serves_until_terminated(scenario: Filled) -> None:
    import signal
    import socket
    import subprocess
    import sys
    import time

    import httpx

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "worker.read.server", "--port", str(port), "--database-url", scenario.url],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/v1/summary", timeout=2)
                break
            except httpx.TransportError:
                assert server.poll() is None, "metrics-api exited before listening"
                assert time.monotonic() < deadline, "metrics-api did not start listening in 20 s"
                time.sleep(0.1)
        assert response.status_code == 200
        assert response.json()["total_sessions"] == 60
    finally:
        server.terminate()
        _, stderr = server.communicate(timeout=10)  # also closes the pipe
    # uvicorn shuts down cleanly (lifespan closes the pool), then re-raises SIGTERM as its exit.
    assert server.returncode in (0, -signal.SIGTERM), stderr.decode()
    assert "Application shutdown complete" in stderr.decode()


def test_the_console_script_says_where_the_database_comes_from(capsys: pytest.CaptureFixture[str]) -> None:
    from worker.read.server import main

    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    assert "env DATABASE_URL" in " ".join(capsys.readouterr().out.split())


def test_the_doc_pages_load_from_this_origin_only(client: TestClient) -> None:
    for path in ("/docs", "/redoc"):
        response = client.get(path)
        assert response.status_code == 200 and response.headers["Content-Security-Policy"] == DOCS_POLICY
    assert "img-src 'self' data:" in DOCS_POLICY and "connect-src 'self'" in DOCS_POLICY
    assert "Content-Security-Policy" not in client.get("/v1/summary").headers
