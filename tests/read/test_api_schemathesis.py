"""The live API (uvicorn on a loopback port) against its own OpenAPI document, with schemathesis:
no 5xx, no request that violates the schema accepted, every response as documented."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
import requests
import schemathesis
import uvicorn
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.read.conftest import Filled
from worker.read.api import create_app

PORTS = range(7150, 7200)  # this project's test range


def _free_port() -> int:
    for port in PORTS:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {PORTS.start}-{PORTS.stop - 1}")


# The API runs behind a token, as deployed. Positive cases carry it (and ignored_auth sends a wrong
# one and requires the 401). Negative cases go as generated: a missing token is one of the
# violations schemathesis makes, and adding ours would turn it into an accepted request; so the
# negative run checks that nothing schema-violating gets through and nothing answers 5xx, and the
# date tests below check the 422s behind a valid token.
TOKEN = "schemathesis-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def live_api(scenario: Filled) -> Iterator[str]:
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(scenario.url, tokens=[TOKEN]), host="127.0.0.1", port=_free_port(), log_level="warning"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the API did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{server.config.port}"
    server.should_exit = True
    thread.join(10)


def _operations(base: str) -> list[schemathesis.APIOperation]:
    loaded = schemathesis.openapi.from_url(f"{base}/openapi.json")
    return [result.ok() for result in loaded.get_all_operations()]


# positive_data_acceptance is left out: OpenAPI cannot say "end_date on or after start_date", which
# the API answers with a 422 naming end_date. Every other check runs, negative_data_rejection
# (a request that violates the schema must not be accepted) among them.
# Not schemathesis.pytest.from_fixture: its lazy loader writes Function._nodeid, which pytest 9 removed.
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_the_api_does_what_its_openapi_says(live_api: str, mode: GenerationMode) -> None:
    operations = _operations(live_api)
    assert len(operations) >= 10
    for operation in operations:
        if mode is GenerationMode.NEGATIVE and not list(operation.iter_parameters()):
            continue  # /healthz: nothing to get wrong

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case: schemathesis.Case) -> None:
            headers = AUTH if mode is GenerationMode.POSITIVE else None
            case.call_and_validate(headers=headers, excluded_checks=[positive_data_acceptance])

        check()


@pytest.mark.parametrize(
    "value",
    [
        "0",
        "86400",
        "0.0",
        "2026-12-01T00:00:00",
        "2026-2-1",
        "20261201",
        "0000-01-01",
        "2026-02-30",
        " 2026-02-01",
        "2026-02-01\n",
    ],
)
@pytest.mark.parametrize("param", ["start_date", "end_date"])
def test_a_date_parameter_takes_yyyy_mm_dd_only(live_api: str, param: str, value: str) -> None:
    response = requests.get(f"{live_api}/v1/summary", params={param: value}, headers=AUTH, timeout=10)
    assert response.status_code == 422, response.text
    [error] = response.json()["detail"]
    assert error["loc"] == ["query", param]
    assert "YYYY-MM-DD" in error["msg"]


def test_a_yyyy_mm_dd_date_is_taken(live_api: str) -> None:
    response = requests.get(
        f"{live_api}/v1/daily", params={"end_date": "2026-02-06", "days": 3}, headers=AUTH, timeout=10
    )
    assert response.status_code == 200, response.text
    assert [day["date"] for day in response.json()] == ["2026-02-04", "2026-02-05", "2026-02-06"]
