"""Least privilege: ``metrics-worker schema --reader ROLE`` gives a role SELECT and nothing else, and
metrics-api serves every route on it."""

from __future__ import annotations

import uuid
import warnings
from collections.abc import Iterator

import psycopg
import pytest
from psycopg.conninfo import make_conninfo
from starlette.exceptions import StarletteDeprecationWarning

with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

from tests.read.conftest import Filled
from tests.read.helpers import v1_paths
from tests.status_views import steady
from worker.cli import main as worker_main
from worker.read.api import create_app


@pytest.fixture(scope="module")
def reader_url(scenario: Filled) -> Iterator[str]:
    role = f"reader_{uuid.uuid4().hex[:10]}"  # roles are per cluster: one per run, dropped after
    try:
        assert worker_main(["schema", "--database-url", scenario.url, "--reader", role]) == 0
        yield make_conninfo(scenario.url, user=role)
    finally:
        with psycopg.connect(scenario.url, autocommit=True) as admin:
            if admin.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone():
                admin.execute(f'DROP OWNED BY "{role}"')
                admin.execute(f'DROP ROLE "{role}"')


def test_the_reader_role_serves_every_route_as_the_owner_does(scenario: Filled, reader_url: str) -> None:
    with (
        TestClient(create_app(reader_url, tokens=[])) as reader,
        TestClient(create_app(scenario.url, tokens=[])) as owner,
    ):
        assert reader.get("/healthz").status_code == 200
        for path in v1_paths(reader):
            got = reader.get(path)
            assert got.status_code == 200, (path, got.text)
            if not got.headers["content-type"].startswith("application/json"):  # the alerts gauge
                assert got.text == owner.get(path).text, path
                continue
            mine, theirs = got.json(), owner.get(path).json()
            if path == "/v1/pipeline":  # two reads differ in what moves by itself: the time, ages
                mine, theirs = steady(mine), steady(theirs)
            assert mine == theirs, path


def test_the_reader_role_cannot_write(reader_url: str) -> None:
    with psycopg.connect(reader_url, autocommit=True) as conn:
        for statement in (
            "DELETE FROM session_metrics",
            "UPDATE round_metrics SET error = 'x'",
            "INSERT INTO execute_sync_mismatch_metrics (reason) VALUES ('x')",
            "CREATE TABLE sneaky (x int)",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)


def test_granting_again_is_harmless(
    scenario: Filled, reader_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    role = psycopg.conninfo.conninfo_to_dict(reader_url)["user"]
    assert worker_main(["schema", "--database-url", scenario.url, "--reader", str(role)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == f"role {role} granted SELECT only"
