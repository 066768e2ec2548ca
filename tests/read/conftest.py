"""Fixtures of the read-side tests: databases filled through the apply engine, from contract events."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import psycopg
import pytest

from contract.events import Event
from tests.conftest import Services, with_search_path
from tests.read.scenario import Oracle, build_scenario
from worker.engine.apply import apply_events
from worker.schema import apply_schema


def fill(conn: psycopg.Connection[Any], events: Sequence[Event], batch: int = 500) -> None:
    """Apply ``events`` through the apply engine, in batches like a worker would."""
    for i in range(0, len(events), batch):
        apply_events(conn, events[i : i + batch])


@dataclass(frozen=True)
class Filled:
    url: str
    events: list[Event]
    oracle: Oracle


@contextlib.contextmanager
def filled_schema(services: Services, events: Sequence[Event]) -> Iterator[str]:
    """A schema of its own with the tables and ``events`` applied, for a module's read-only tests."""
    schema = f"r_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(services.database_url, autocommit=True) as admin:
        admin.execute(f'CREATE SCHEMA "{schema}"')
    url = with_search_path(services.database_url, schema)
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            apply_schema(conn)
            fill(conn, events)
        yield url
    finally:
        with psycopg.connect(services.database_url, autocommit=True) as admin:
            admin.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture(scope="module")
def scenario(services: Services) -> Iterator[Filled]:
    """One varied scenario (sessions over several UTC days, rounds, tools, forwards, mismatches,
    stubs), applied once per module; its expected reads are computed from the events alone."""
    events = build_scenario(seed=6)
    with filled_schema(services, events) as url:
        yield Filled(url, events, Oracle(events))


@pytest.fixture
def scenario_conn(scenario: Filled) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(scenario.url, autocommit=True) as connection:
        yield connection


def free_port() -> int:
    """A free port in this suite's range (8100-8199), starting at one of our own."""
    for port in [*range(8100 + os.getpid() % 90, 8200), *range(8100, 8200)]:
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 8100-8199")


@dataclass
class Served:
    """A metrics-api console script serving at ``url``; ``output`` is what it logged, once stopped."""

    url: str
    output: str = ""


@contextlib.contextmanager
def metrics_api(env: dict[str, str], *flags: str) -> Iterator[Served]:
    """``python -m worker.read.server`` (metrics-api) in ``env`` on a free port, until the block ends."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "worker.read.server", "--port", str(port), *flags],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    served = Served(f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"{served.url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, "metrics-api exited: " + process.communicate()[0].decode()
            assert time.monotonic() < deadline, "metrics-api did not answer /healthz in 20 s"
            time.sleep(0.1)
        yield served
    finally:
        process.terminate()
        served.output = process.communicate(timeout=10)[0].decode()
