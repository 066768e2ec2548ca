"""A session's detail with contract v1's optional fields: its user, the usage parts summed, each round's
provider, parts and time to first token, and the requests forwarded for it, in the library, the
API and the command line alike."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from contract.events import (
    ForwardCompleted,
    ForwardStarted,
    RoundCompleted,
    RoundStarted,
    SessionCompleted,
    SessionStarted,
    TokenUsage,
)
from tests.conftest import Services
from tests.read.conftest import filled_schema
from tests.read.events import utc
from worker import cli
from worker.read import queries

T = utc(2026, 3, 4, 9)


def _at(seconds: float) -> Any:
    return T + timedelta(seconds=seconds)


EVENTS = [
    SessionStarted(event_id="e1", occurred_at=_at(0), session_id="s-linked", model="o3", user_id="user-7"),
    RoundStarted(event_id="e2", occurred_at=_at(1), round_id="r-1", session_id="s-linked", model="o3",
                 provider="openai"),
    ForwardStarted(event_id="e3", occurred_at=_at(1.5), forward_id="f-2", endpoint="/v1/responses",
                   model="o3", is_stream=True, provider="openai", session_id="s-linked", round_id="r-1"),
    ForwardCompleted(event_id="e4", occurred_at=_at(4), forward_id="f-2", status="success", status_code=200,
                     usage=TokenUsage(prompt_tokens=1200, completion_tokens=900, total_tokens=2100,
                                      cache_read_tokens=1024, reasoning_tokens=700),
                     time_to_first_token_ms=2100),
    RoundCompleted(event_id="e5", occurred_at=_at(5), round_id="r-1", session_id="s-linked", status="success",
                   usage=TokenUsage(prompt_tokens=1200, completion_tokens=900, total_tokens=2100,
                                    cache_read_tokens=1024, cache_write_tokens=0, reasoning_tokens=700),
                   time_to_first_token_ms=2300),
    RoundStarted(event_id="e6", occurred_at=_at(6), round_id="r-2", session_id="s-linked", model="o3"),
    RoundCompleted(event_id="e7", occurred_at=_at(7), round_id="r-2", session_id="s-linked", status="success",
                   usage=TokenUsage(prompt_tokens=10, completion_tokens=5, total_tokens=15)),
    # Started earlier than f-2, linked to the session only; and one for another session, one for none.
    ForwardStarted(event_id="e8", occurred_at=_at(0.5), forward_id="f-1", endpoint="/v1/embeddings",
                   model="text-embedding-3-small", is_stream=False, session_id="s-linked"),
    ForwardStarted(event_id="e9", occurred_at=_at(1), forward_id="f-other", endpoint="/v1/chat", model="m",
                   is_stream=False, session_id="s-other"),
    ForwardStarted(event_id="e10", occurred_at=_at(1), forward_id="f-none", endpoint="/v1/chat", model="m",
                   is_stream=False),
    SessionCompleted(event_id="e11", occurred_at=_at(8), session_id="s-linked", status="completed"),
]  # fmt: skip


@pytest.fixture(scope="module")
def url(services: Services) -> Iterator[str]:
    with filled_schema(services, EVENTS) as filled:
        yield filled


def test_the_detail_lists_the_forwards_and_the_new_round_fields(url: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        detail = queries.session_detail(conn, "s-linked")
        other = queries.session_detail(conn, "s-other")
        listed = {f.forward_id: f for f in queries.forward_requests(conn)}
    assert detail is not None and other is None  # s-other never started: its forward shows in the list only
    s = detail.session
    assert (s.user_id, s.cache_read_tokens, s.cache_write_tokens, s.reasoning_tokens) == (
        "user-7",
        1024,
        0,
        700,
    )
    first, second = detail.rounds
    assert (first.provider, first.cache_read_tokens, first.cache_write_tokens, first.reasoning_tokens,
            first.time_to_first_token_ms) == ("openai", 1024, 0, 700, 2300)  # fmt: skip
    assert (second.provider, second.cache_read_tokens, second.reasoning_tokens,
            second.time_to_first_token_ms) == (None, None, None, None)  # fmt: skip
    assert [(f.forward_id, f.round_id) for f in detail.forwards] == [("f-1", None), ("f-2", "r-1")]
    f2 = detail.forwards[1]
    assert (f2.session_id, f2.provider, f2.cache_read_tokens, f2.cache_write_tokens, f2.reasoning_tokens,
            f2.time_to_first_token_ms) == ("s-linked", "openai", 1024, None, 700, 2100)  # fmt: skip
    assert f2 == listed["f-2"]  # the forwards list shows the same row
    assert listed["f-none"].session_id is None and listed["f-other"].session_id == "s-other"


def test_the_api_serves_them_and_documents_them(url: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter(
            "ignore"
        )  # Starlette's test client falling back to httpx (tests/read/test_api.py)
        from fastapi.testclient import TestClient

    from worker.read.api import create_app

    with TestClient(create_app(url, tokens=[])) as client:
        body = client.get("/v1/sessions/s-linked").json()
        schema = client.get("/openapi.json").json()["components"]["schemas"]
    assert body["session"]["user_id"] == "user-7"
    assert body["rounds"][0]["time_to_first_token_ms"] == 2300
    assert [f["forward_id"] for f in body["forwards"]] == ["f-1", "f-2"]
    assert {"forwards"} <= set(schema["SessionDetail"]["properties"])
    assert {
        "provider",
        "cache_read_tokens",
        "cache_write_tokens",
        "reasoning_tokens",
        "time_to_first_token_ms",
    } <= set(schema["RoundMetrics"]["properties"])
    assert {"session_id", "round_id", "provider"} <= set(schema["ForwardRequestMetrics"]["properties"])


def test_the_command_line_shows_them(url: str, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("COLUMNS", "400")
    assert cli.main(["query", "session", "s-linked"]) == 0
    shown = capsys.readouterr().out
    for text in (
        "user-7",
        "openai",
        "first token ms",
        "2,300",
        "Forwarded requests (2)",
        "f-1",
        "/v1/embeddings",
    ):
        assert text in shown, text
    assert cli.main(["query", "session", "s-linked", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["forwards"][1]["reasoning_tokens"] == 700
