"""Unit: the scopes' usage parts, time to first token, provider and user, and a forward begun inside a
session or round block linked to them (no Redis: the calls' items are encoded and decoded here)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contract import decode
from contract.keys import Keys
from producer.wire import Encoder
from tests.producer.helpers import Capture


def _events(pub: Capture, kind: str) -> list[Any]:
    encode = Encoder(Keys())
    return [e for e in (decode(encode(item)[1]) for item in pub.items) if e.type == kind]


def test_a_forward_inside_a_round_or_session_is_linked_to_them() -> None:
    pub = Capture()
    with pub.forward("/v1/chat/completions", "gpt-4o"):  # outside any block: no link
        pass
    with pub.session("gpt-4o", "s-1") as s:
        with pub.forward("/v1/embeddings", "text-embedding-3-small") as f:
            f.complete(200, (8, 0))
        with s.round(round_id="r-1"):
            with pub.forward("/v1/chat/completions", "gpt-4o", provider="openai"):
                pass
            with pub.forward("/v1/chat", "gpt-4o", session_id="elsewhere"):  # its own link wins
                pass
        with pub.forward("/v1/chat", "gpt-4o"):  # the round ended: the session again
            pass
    with pub.forward("/v1/chat", "gpt-4o"):  # the session ended too
        pass
    links = [(e.session_id, e.round_id, e.provider) for e in _events(pub, "forward.started")]
    assert links == [
        (None, None, None),
        ("s-1", None, None),
        ("s-1", "r-1", "openai"),
        ("elsewhere", None, None),
        ("s-1", None, None),
        (None, None, None),
    ]


def test_links_follow_each_thread_and_task_of_their_own() -> None:
    pub = Capture()
    seen: list[Any] = []

    def other_thread() -> None:
        with pub.forward("/t", "m") as f:
            seen.append(f.session_id)

    async def tasks() -> None:
        async def in_session(sid: str) -> None:
            async with pub.session("m", sid) as s, s.round(round_id=f"{sid}-r"):
                await asyncio.sleep(0)
                with pub.forward("/a", "m") as f:
                    seen.append((f.session_id, f.round_id))

        await asyncio.gather(in_session("a"), in_session("b"))

    with pub.session("m", "main"):
        thread = threading.Thread(target=other_thread)
        thread.start()
        thread.join()
        asyncio.run(tasks())
    assert seen[0] is None  # a new thread starts with no open block
    assert sorted(seen[1:]) == [("a", "a-r"), ("b", "b-r")]


def test_round_scope_usage_parts_provider_user_and_first_token() -> None:
    pub = Capture()
    with pub.session("o3", "s-1", user_id="user-42", provider="openai") as s:
        with s.round(round_id="r-1") as r:
            r.first_token(420)
            r.usage(1200, 300, cache_read_tokens=1024, reasoning_tokens=256)
        with s.round(round_id="r-2", provider="azure.ai.openai") as r:
            r.first_token()  # measured: some milliseconds from the block's start
            r.first_token(99_999)  # an explicit figure replaces it
        with s.round(round_id="r-3"):
            pass
    (started,) = _events(pub, "session.started")
    assert started.user_id == "user-42"
    assert [e.provider for e in _events(pub, "round.started")] == ["openai", "azure.ai.openai", "openai"]
    done = _events(pub, "round.completed")
    assert done[0].time_to_first_token_ms == 420
    u = done[0].usage
    assert (u.prompt_tokens, u.cache_read_tokens, u.cache_write_tokens, u.reasoning_tokens) == (
        1200,
        1024,
        None,
        256,
    )
    assert done[1].time_to_first_token_ms == 99_999
    assert done[2].time_to_first_token_ms is None and done[2].usage.cache_read_tokens is None


def test_forward_scope_usage_parts_and_first_token() -> None:
    pub = Capture()
    with pub.forward("/v1/messages", "claude-sonnet-4", is_stream=True, provider="anthropic") as f:
        f.first_token()
        f.complete(200, {"prompt_tokens": 900, "completion_tokens": 50}, cache_write_tokens=800)
    (done,) = _events(pub, "forward.completed")
    assert done.usage.cache_write_tokens == 800 and done.usage.total_tokens == 950
    assert done.time_to_first_token_ms is not None and done.time_to_first_token_ms >= 0


def test_a_part_larger_than_its_whole_is_refused_in_the_scope_naming_both() -> None:
    pub = Capture()
    with pub.session("m", "s") as s, s.round() as r:
        with pytest.raises(
            ValueError, match=r"usage: reasoning_tokens \(301\) is larger than completion_tokens \(300\)"
        ):
            r.usage(1200, 300, reasoning_tokens=301)
        with pytest.raises(ValueError, match="time_to_first_token_ms: must be an int between 0"):
            r.first_token(-1)
    with pytest.raises(ValueError, match="user_id: must be a non-empty str"):
        pub.session("m", user_id="")


_COUNT = st.one_of(st.none(), st.integers(0, 2_000))


@settings(max_examples=300, deadline=None)
@given(
    prompt=st.integers(0, 1_000),
    completion=st.integers(0, 1_000),
    read=_COUNT,
    write=_COUNT,
    reasoning=_COUNT,
)
def test_the_call_refuses_exactly_the_usage_the_contract_refuses(
    prompt: int, completion: int, read: int | None, write: int | None, reasoning: int | None
) -> None:
    from pydantic import ValidationError

    from contract.events import TokenUsage
    from producer import checks

    parts = {"cache_read_tokens": read, "cache_write_tokens": write, "reasoning_tokens": reasoning}
    wholes = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
    try:
        TokenUsage(**wholes, **parts)
        contract_refuses = None
    except ValidationError as exc:
        contract_refuses = str(exc.errors()[0]["msg"])
    try:
        checks.usage("usage", (prompt, completion), read, write, reasoning)
        call_refuses = None
    except ValueError as exc:
        call_refuses = str(exc)
    assert (contract_refuses is None) == (call_refuses is None)
    if contract_refuses is not None:
        assert call_refuses == f"usage: {contract_refuses}"  # the same words, both fields named
