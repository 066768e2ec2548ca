"""Events of a small priced history for the cost tests (engine and read side): the hand-computed
example of MEASURED.md (gpt-4o, 1M prompt tokens of which 200k cached reads, 100k completion
tokens: 800k x $2.50 + 200k x $1.25 + 100k x $10 per million = $3.25) and an unknown model."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from contract.events import (
    Event,
    ForwardCompleted,
    ForwardStarted,
    RoundCompleted,
    RoundStarted,
    SessionStarted,
    TokenUsage,
)

EXAMPLE_USD = Decimal("3.25")


def usage(prompt: int, completion: int, **parts: int) -> TokenUsage:
    return TokenUsage(
        prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion, **parts
    )


def priced_round(
    at: datetime,
    round_id: str,
    session_id: str,
    model: str = "gpt-4o",
    provider: str | None = "openai",
    tokens: TokenUsage | None = None,
) -> list[Event]:
    """A round's start and completion at ``at`` (by default the $3.25 example)."""
    return [
        RoundStarted(
            event_id=f"{round_id}-s",
            occurred_at=at,
            round_id=round_id,
            session_id=session_id,
            model=model,
            provider=provider,
        ),
        RoundCompleted(
            event_id=f"{round_id}-c",
            occurred_at=at,
            round_id=round_id,
            session_id=session_id,
            status="success",
            usage=tokens or usage(1_000_000, 100_000, cache_read_tokens=200_000),
        ),
    ]


def example_history(at: datetime) -> list[Event]:
    """Session s1 of user u1: one $3.25 round and one round of a model no list knows; a $3.25
    forward of endpoint /v1/chat linked to it."""
    return [
        SessionStarted(event_id="s1-s", occurred_at=at, session_id="s1", model="gpt-4o", user_id="u1"),
        *priced_round(at, "r1", "s1"),
        *priced_round(at, "r2", "s1", model="acme-unknown-9", provider=None, tokens=usage(10, 5)),
        ForwardStarted(
            event_id="f1-s",
            occurred_at=at,
            forward_id="f1",
            endpoint="/v1/chat",
            model="gpt-4o",
            is_stream=False,
            provider="openai",
            session_id="s1",
            round_id="r1",
        ),
        ForwardCompleted(
            event_id="f1-c",
            occurred_at=at,
            forward_id="f1",
            status="success",
            status_code=200,
            usage=usage(1_000_000, 100_000, cache_read_tokens=200_000),
        ),
    ]
