"""The wire contract: one pydantic model per lifecycle event, shared by both sides.

A Redis stream entry has one field, ``event``, holding one UTF-8 JSON object that validates
against :data:`Event`. Unknown extra fields are ignored (forward compatibility); an unknown
``type`` or a ``v`` newer than :data:`SCHEMA_VERSION` is rejected.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from contract.fields import BIGINT_MAX as BIGINT_MAX  # re-exported: the limits' old home
from contract.fields import MAX_ERROR_LENGTH as MAX_ERROR_LENGTH
from contract.fields import MAX_ID_LENGTH as MAX_ID_LENGTH
from contract.fields import MAX_NAME_LENGTH as MAX_NAME_LENGTH
from contract.fields import Integer, Timestamp

SCHEMA_VERSION = 1


_ZERO = timedelta(0)


def to_utc(value: datetime) -> datetime:
    """``value`` in UTC. Most producers send UTC already: only the others get a new datetime.
    Raises OverflowError when the conversion leaves datetime's range (year 1 or 9999)."""
    return value if value.utcoffset() == _ZERO else value.astimezone(UTC)


# No NUL anywhere: PostgreSQL text cannot store it. Checked by pydantic-core's regex engine, not
# by a Python callback, since decoding is on every worker's hot path.
_NO_NUL = r"^[^\x00]*$"
Id = Annotated[str, Field(min_length=1, max_length=MAX_ID_LENGTH, pattern=_NO_NUL)]
Name = Annotated[str, Field(min_length=1, max_length=MAX_NAME_LENGTH, pattern=_NO_NUL)]
ErrorText = Annotated[str, Field(max_length=MAX_ERROR_LENGTH, pattern=_NO_NUL)]
Count = Annotated[int, Integer(0, BIGINT_MAX)]

SessionStatus = Literal["completed", "awaiting_response", "error", "cancelled"]
RoundStatus = Literal["success", "error", "cancelled"]
ForwardStatus = Literal["success", "error", "timeout"]


# Ids are unique, so pydantic's cache of decoded strings would only cost time (cache_strings).
_CONFIG = ConfigDict(extra="ignore", frozen=True, cache_strings=False)


#: Whole -> its parts: the parts of one whole sum to at most it. The OpenTelemetry GenAI conventions
#: and genai-prices count cache reads and writes inside the prompt (input) tokens, and reasoning
#: tokens inside the completion (output) tokens; Anthropic's ``input_tokens`` leave the cache out,
#: so a producer adds it in (README: The wire contract). Published in the JSON Schema as ``x-parts``.
USAGE_PARTS: dict[str, tuple[str, ...]] = {
    "prompt_tokens": ("cache_read_tokens", "cache_write_tokens"),
    "completion_tokens": ("reasoning_tokens",),
}


def part_too_large(whole: str, whole_value: int, parts: dict[str, int]) -> str | None:
    """Why ``parts`` (name -> value, the ones given) cannot be parts of ``whole``, or None. The one
    wording of the rule, for the contract's refusal and the producer's argument check."""
    if sum(parts.values()) <= whole_value:
        return None
    names = " + ".join(parts)
    values = " + ".join(str(v) for v in parts.values())
    return (
        f"{names} ({values}) is larger than {whole} ({whole_value}): "
        f"{' and '.join(parts)} {'are parts' if len(parts) > 1 else 'is part'} of {whole}, "
        "not counted on top of it"
    )


def usage_refusal(
    prompt: int, completion: int, cache_read: int | None, cache_write: int | None, reasoning: int | None
) -> str | None:
    """Why :class:`TokenUsage` refuses these parts (its first reason, in the order it checks them),
    or None: for callers that check before building one (the Python producer)."""
    if cache_read is not None and cache_read > prompt:
        return part_too_large("prompt_tokens", prompt, {"cache_read_tokens": cache_read})
    if cache_write is not None:
        given = {"cache_write_tokens": cache_write}
        parts = given if cache_read is None else {"cache_read_tokens": cache_read, **given}
        reason = part_too_large("prompt_tokens", prompt, parts)
        if reason is not None:
            return reason
    if reasoning is not None and reasoning > completion:
        return part_too_large("completion_tokens", completion, {"reasoning_tokens": reasoning})
    return None


class TokenUsage(BaseModel):
    """Token counts of one model call. The optional parts (absent or null: not reported) say how
    much of a whole was read from the provider's prompt cache, written to it, or spent on
    reasoning; x-parts lists them by whole: the parts given sum to at most their whole."""

    model_config = ConfigDict(
        extra="ignore",
        frozen=True,
        cache_strings=False,
        json_schema_extra={"x-parts": {whole: list(parts) for whole, parts in USAGE_PARTS.items()}},
    )

    prompt_tokens: Count
    completion_tokens: Count
    total_tokens: Count
    cache_read_tokens: Count | None = Field(
        default=None, description="part of prompt_tokens read from the provider's prompt cache"
    )
    cache_write_tokens: Count | None = Field(
        default=None, description="part of prompt_tokens written to the provider's prompt cache"
    )
    reasoning_tokens: Count | None = Field(
        default=None, description="part of completion_tokens spent on reasoning"
    )

    @field_validator("cache_read_tokens", "cache_write_tokens", "reasoning_tokens")
    @classmethod
    def _within_its_whole(cls, value: int | None, info: ValidationInfo) -> int | None:
        # A part larger than its whole would price the rest of the whole below zero. Runs only for
        # a part given (not for the defaults): events without parts pay nothing for the rule.
        if value is None:
            return value
        data, name = info.data, info.field_name or ""
        if name == "reasoning_tokens":
            whole, parts = "completion_tokens", {name: value}
        elif name == "cache_write_tokens" and data.get("cache_read_tokens") is not None:
            whole, parts = "prompt_tokens", {"cache_read_tokens": data["cache_read_tokens"], name: value}
        else:
            whole, parts = "prompt_tokens", {name: value}
        limit = data.get(whole)  # absent when the whole itself was refused: that error is reported
        if limit is None or sum(parts.values()) <= limit:
            return value
        raise PydanticCustomError("usage_part_too_large", part_too_large(whole, limit, parts) or "")


class _Event(BaseModel):
    model_config = _CONFIG

    v: Annotated[int, Integer(1, SCHEMA_VERSION)] = SCHEMA_VERSION  # optional: absent means 1
    event_id: Id
    occurred_at: Timestamp

    @property
    def order_key(self) -> str:
        """The event's place in true order: occurred_at, then lifecycle rank, then event_id.

        Fixed-width UTC time first, so comparing keys as byte strings (``COLLATE "C"`` in
        PostgreSQL) orders by time. On equal times a start ranks before anything else and a
        completion after, so a start and a completion stamped in the same microsecond still
        mean "started, then completed"; the event_id breaks any remaining tie deterministically.
        """
        t = self.occurred_at
        if t.utcoffset():  # decoded events are in UTC already (contract.codec); built ones may not be
            t = t.astimezone(UTC)
        # The same text as isoformat(), at half the cost.
        return "%04d-%02d-%02dT%02d:%02d:%02d.%06d+00:00|%d|%s" % (  # noqa: UP031 - hot path
            t.year,
            t.month,
            t.day,
            t.hour,
            t.minute,
            t.second,
            t.microsecond,
            RANK[self.type],  # type: ignore[attr-defined]
            self.event_id,
        )


class SessionStarted(_Event):
    type: Literal["session.started"] = "session.started"
    session_id: Id
    model: Name
    user_id: Id | None = Field(default=None, description="the end user the session works for")


class SessionMessageCount(_Event):
    type: Literal["session.message_count"] = "session.message_count"
    session_id: Id
    message_count: Count


class SessionCompleted(_Event):
    type: Literal["session.completed"] = "session.completed"
    session_id: Id
    status: SessionStatus


class RoundStarted(_Event):
    type: Literal["round.started"] = "round.started"
    round_id: Id
    session_id: Id
    model: Name
    provider: Name | None = Field(
        default=None,
        description="the model's provider, as OpenTelemetry's gen_ai.provider.name: openai, anthropic, "
        "aws.bedrock, gcp.vertex_ai, azure.ai.openai, gcp.gemini, ...",
    )


class RoundCompleted(_Event):
    type: Literal["round.completed"] = "round.completed"
    round_id: Id
    session_id: Id
    status: RoundStatus
    usage: TokenUsage
    prompt_cached_tool_outputs: Count = 0
    error: ErrorText | None = None
    time_to_first_token_ms: Count | None = Field(
        default=None, description="milliseconds from the request to the first token of a streamed answer"
    )


class RoundCompressed(_Event):
    type: Literal["round.compressed"] = "round.compressed"
    round_id: Id
    session_id: Id
    tokens_saved: Count


class ToolStarted(_Event):
    type: Literal["tool.started"] = "tool.started"
    tool_call_id: Id
    round_id: Id
    session_id: Id
    tool_name: Name


class ToolCompleted(_Event):
    type: Literal["tool.completed"] = "tool.completed"
    tool_call_id: Id
    round_id: Id
    session_id: Id
    success: StrictBool
    error: ErrorText | None = None


class ForwardStarted(_Event):
    type: Literal["forward.started"] = "forward.started"
    forward_id: Id
    endpoint: Name
    model: Name
    is_stream: StrictBool
    provider: Name | None = Field(
        default=None,
        description="the model's provider, as OpenTelemetry's gen_ai.provider.name: openai, anthropic, "
        "aws.bedrock, gcp.vertex_ai, azure.ai.openai, gcp.gemini, ...",
    )
    session_id: Id | None = Field(default=None, description="the session this request was made for")
    round_id: Id | None = Field(default=None, description="the round this request was made for")


class ForwardCompleted(_Event):
    type: Literal["forward.completed"] = "forward.completed"
    forward_id: Id
    status: ForwardStatus
    status_code: Annotated[int, Integer(100, 599)] | None = None
    usage: TokenUsage | None = None
    error: ErrorText | None = None
    time_to_first_token_ms: Count | None = Field(
        default=None, description="milliseconds from the request to the first token of a streamed answer"
    )


class SyncMismatch(_Event):
    type: Literal["sync.mismatch"] = "sync.mismatch"
    reason: Name


EVENT_TYPES: tuple[type[_Event], ...] = (
    SessionStarted,
    SessionMessageCount,
    SessionCompleted,
    RoundStarted,
    RoundCompleted,
    RoundCompressed,
    ToolStarted,
    ToolCompleted,
    ForwardStarted,
    ForwardCompleted,
    SyncMismatch,
)

#: Lifecycle rank used to order events stamped with the same occurred_at.
RANK: dict[str, int] = {
    cls.model_fields["type"].default: (
        0
        if cls.model_fields["type"].default.endswith(".started")
        else 2
        if cls.model_fields["type"].default.endswith(".completed")
        else 1
    )
    for cls in EVENT_TYPES
}

Event = Annotated[
    SessionStarted
    | SessionMessageCount
    | SessionCompleted
    | RoundStarted
    | RoundCompleted
    | RoundCompressed
    | ToolStarted
    | ToolCompleted
    | ForwardStarted
    | ForwardCompleted
    | SyncMismatch,
    Field(discriminator="type"),
]
