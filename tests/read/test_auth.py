"""API tokens: every /v1 route refuses a request without a right token, /healthz stays open, and
metrics-api will not serve an open API on a public address."""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.exceptions import StarletteDeprecationWarning

with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

from tests.read.conftest import Filled, metrics_api
from tests.read.helpers import v1_paths
from worker.read.api import create_app
from worker.read.auth import TokenCheck, TokenError, is_loopback, startup_tokens, tokens_from_env
from worker.read.server import main

TOKEN = "right-token-0123456789abcdef"
OTHER = "second-token-0123456789abcdef"


@pytest.fixture(scope="module")
def guarded(scenario: Filled) -> Iterator[TestClient]:
    with TestClient(create_app(scenario.url, tokens=[TOKEN, OTHER])) as test_client:
        yield test_client


def test_every_v1_route_refuses_a_missing_or_wrong_token(guarded: TestClient) -> None:
    for path in v1_paths(guarded):
        for headers, error in (
            ({}, None),
            ({"Authorization": "Bearer wrong-token-0123456789abcdef"}, 'error="invalid_token"'),
            ({"Authorization": f"Bearer {TOKEN}x"}, 'error="invalid_token"'),
            ({"Authorization": f"Basic {TOKEN}"}, None),
            ({"Authorization": "Bearer "}, None),
        ):
            response = guarded.get(path, headers=headers)
            assert response.status_code == 401, (path, headers)
            challenge = response.headers["www-authenticate"]
            assert challenge.startswith('Bearer realm="metrics-api"')
            assert (error in challenge) if error else ("error=" not in challenge)
            assert set(response.json()) == {"detail"} and TOKEN not in response.text


def test_every_v1_route_serves_a_right_token(guarded: TestClient) -> None:
    for path in v1_paths(guarded):
        for token in (TOKEN, OTHER):
            response = guarded.get(path, headers={"Authorization": f"bearer {token}"})
            assert response.status_code == 200, (path, response.text)


def test_the_token_is_checked_before_the_parameters(guarded: TestClient) -> None:
    """Without a token, a bad or unknown parameter is a 401 too: nothing about the API leaks."""
    assert guarded.get("/v1/sessions", params={"limt": 5}).status_code == 401
    assert guarded.get("/v1/sessions", params={"limit": 0}).status_code == 401
    ok = guarded.get("/v1/sessions", params={"limt": 5}, headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.status_code == 422


def test_health_stays_open(guarded: TestClient) -> None:
    assert guarded.get("/healthz").status_code == 200


def test_tokens_come_from_the_variable_and_the_file(tmp_path: Path) -> None:
    file = tmp_path / "tokens"
    file.write_text(f"# the dashboard\n{OTHER}\n\n", encoding="utf-8")
    env = {"METRICS_API_TOKENS": f" {TOKEN} ,", "METRICS_API_TOKENS_FILE": str(file)}
    assert tokens_from_env(env) == (TOKEN, OTHER)
    assert tokens_from_env({}) == ()


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"METRICS_API_TOKENS": "short"}, "METRICS_API_TOKENS: token 1 is 5 characters"),
        ({"METRICS_API_TOKENS": f"{TOKEN},with space 0123456789"}, "token 2"),
        ({"METRICS_API_TOKENS_FILE": "/no/such/file"}, "cannot read '/no/such/file'"),
    ],
)
def test_an_unusable_token_setting_is_one_clear_error(env: dict[str, str], says: str) -> None:
    with pytest.raises(TokenError, match=says) as info:
        tokens_from_env(env)
    assert "short" not in str(info.value) or "short" not in env.get("METRICS_API_TOKENS", "")


def test_an_empty_token_file_is_an_error(tmp_path: Path) -> None:
    file = tmp_path / "tokens"
    file.write_text("# nothing yet\n", encoding="utf-8")
    with pytest.raises(TokenError, match="holds no token"):
        tokens_from_env({"METRICS_API_TOKENS_FILE": str(file)})


def test_the_comparison_matches_only_a_configured_token() -> None:
    check = TokenCheck([TOKEN, OTHER])
    assert check.matches(TOKEN) and check.matches(OTHER)
    assert not check.matches(TOKEN[:-1]) and not check.matches("") and not check.matches(TOKEN + "\udcff")
    assert not TokenCheck([]).enabled


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.1.2.3", True), ("::1", True), ("[::1]", True), ("localhost", True),
     ("0.0.0.0", False), ("::", False), ("10.0.0.5", False), ("metrics.example.com", False)],
)  # fmt: skip
def test_which_hosts_are_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_a_public_host_without_tokens_is_refused_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("METRICS_API_TOKENS", raising=False)
    monkeypatch.delenv("METRICS_API_TOKENS_FILE", raising=False)
    assert main(["--host", "0.0.0.0", "--port", "8101"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("metrics-api: refusing to serve the reads on 0.0.0.0")
    assert "--no-auth" in err and "METRICS_API_TOKENS" in err
    # Told explicitly, or with a token, or on loopback, it is allowed.
    assert startup_tokens("0.0.0.0", no_auth=True) == ()
    assert startup_tokens("127.0.0.1", no_auth=False) == ()
    monkeypatch.setenv("METRICS_API_TOKENS", TOKEN)
    assert startup_tokens("0.0.0.0", no_auth=False) == (TOKEN,)


def test_a_bad_token_setting_stops_the_console_script_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("METRICS_API_TOKENS", "tiny")
    assert main(["--port", "8101"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "token 1 is 4 characters" in err and "tiny" not in err


@pytest.mark.acceptance
def test_tokens_never_reach_the_logs(scenario: Filled) -> None:
    """Served at DEBUG, with right and wrong tokens sent: neither appears in what metrics-api logs."""
    wrong = "wrong-token-that-must-not-be-logged"
    env = {**os.environ, "METRICS_API_TOKENS": TOKEN, "DATABASE_URL": scenario.url}
    with metrics_api(env, "--log-level", "debug") as served:
        for token in (TOKEN, wrong):
            httpx.get(f"{served.url}/v1/summary", headers={"Authorization": f"Bearer {token}"})
    output = served.output
    assert "GET /v1/summary" in output and "API tokens: 1 configured" in output
    assert TOKEN not in output and wrong not in output


def test_the_openapi_document_declares_the_token_on_v1_only(guarded: TestClient) -> None:
    """So Swagger UI at /docs offers "Authorize" and sends the token with "Try it out"."""
    document = guarded.get("/openapi.json").json()
    assert document["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    for path, operations in document["paths"].items():
        secured = "security" in operations["get"]
        assert secured == path.startswith("/v1/"), path
