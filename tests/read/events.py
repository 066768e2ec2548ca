"""Building contract events tersely in tests: ids are generated, times are given."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

from contract.events import (
    Event,
    ForwardCompleted,
    ForwardStarted,
    RoundCompleted,
    RoundCompressed,
    RoundStarted,
    SessionCompleted,
    SessionMessageCount,
    SessionStarted,
    SyncMismatch,
    TokenUsage,
    ToolCompleted,
    ToolStarted,
)


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, micro: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC)


def usage(prompt: int, completion: int, **parts: int | None) -> TokenUsage:
    """Token counts; ``parts``: cache_read_tokens, cache_write_tokens, reasoning_tokens."""
    return TokenUsage(
        prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion, **parts
    )


class Events:
    """Collects events in the order they are built; ``.events`` is what to apply."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._ids = itertools.count(1)

    def _add(self, event: Event) -> Event:
        self.events.append(event)
        return event

    def _id(self) -> str:
        return f"ev-{next(self._ids):06d}"

    def session_started(
        self, session_id: str, model: str, at: datetime, *, user_id: str | None = None
    ) -> Event:
        return self._add(
            SessionStarted(
                event_id=self._id(), occurred_at=at, session_id=session_id, model=model, user_id=user_id
            )
        )

    def message_count(self, session_id: str, count: int, at: datetime) -> Event:
        return self._add(
            SessionMessageCount(
                event_id=self._id(), occurred_at=at, session_id=session_id, message_count=count
            )
        )

    def session_completed(self, session_id: str, status: str, at: datetime) -> Event:
        return self._add(
            SessionCompleted(event_id=self._id(), occurred_at=at, session_id=session_id, status=status)  # type: ignore[arg-type]
        )

    def round_started(
        self, round_id: str, session_id: str, model: str, at: datetime, *, provider: str | None = None
    ) -> Event:
        return self._add(
            RoundStarted(
                event_id=self._id(),
                occurred_at=at,
                round_id=round_id,
                session_id=session_id,
                model=model,
                provider=provider,
            )
        )

    def round_completed(
        self,
        round_id: str,
        session_id: str,
        at: datetime,
        tokens: TokenUsage,
        *,
        status: str = "success",
        cached: int = 0,
        error: str | None = None,
        ttft: int | None = None,
    ) -> Event:
        return self._add(
            RoundCompleted(
                event_id=self._id(),
                occurred_at=at,
                round_id=round_id,
                session_id=session_id,
                status=status,  # type: ignore[arg-type]
                usage=tokens,
                prompt_cached_tool_outputs=cached,
                error=error,
                time_to_first_token_ms=ttft,
            )
        )

    def round_compressed(self, round_id: str, session_id: str, tokens_saved: int, at: datetime) -> Event:
        return self._add(
            RoundCompressed(
                event_id=self._id(),
                occurred_at=at,
                round_id=round_id,
                session_id=session_id,
                tokens_saved=tokens_saved,
            )
        )

    def tool_started(
        self, tool_call_id: str, round_id: str, session_id: str, name: str, at: datetime
    ) -> Event:
        return self._add(
            ToolStarted(
                event_id=self._id(),
                occurred_at=at,
                tool_call_id=tool_call_id,
                round_id=round_id,
                session_id=session_id,
                tool_name=name,
            )
        )

    def tool_completed(
        self,
        tool_call_id: str,
        round_id: str,
        session_id: str,
        at: datetime,
        *,
        success: bool = True,
        error: str | None = None,
    ) -> Event:
        return self._add(
            ToolCompleted(
                event_id=self._id(),
                occurred_at=at,
                tool_call_id=tool_call_id,
                round_id=round_id,
                session_id=session_id,
                success=success,
                error=error,
            )
        )

    def forward_started(
        self,
        forward_id: str,
        endpoint: str,
        model: str,
        at: datetime,
        *,
        stream: bool = False,
        provider: str | None = None,
        session_id: str | None = None,
        round_id: str | None = None,
    ) -> Event:
        return self._add(
            ForwardStarted(
                event_id=self._id(),
                occurred_at=at,
                forward_id=forward_id,
                endpoint=endpoint,
                model=model,
                is_stream=stream,
                provider=provider,
                session_id=session_id,
                round_id=round_id,
            )
        )

    def forward_completed(
        self,
        forward_id: str,
        at: datetime,
        *,
        status: str = "success",
        status_code: int | None = 200,
        tokens: TokenUsage | None = None,
        error: str | None = None,
        ttft: int | None = None,
    ) -> Event:
        return self._add(
            ForwardCompleted(
                event_id=self._id(),
                occurred_at=at,
                forward_id=forward_id,
                status=status,  # type: ignore[arg-type]
                status_code=status_code,
                usage=tokens,
                error=error,
                time_to_first_token_ms=ttft,
            )
        )

    def sync_mismatch(self, reason: str, at: datetime) -> Event:
        return self._add(SyncMismatch(event_id=self._id(), occurred_at=at, reason=reason))
