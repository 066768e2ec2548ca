"""Lifecycle helpers: context managers that emit the start, then the completion, for you.

    with pub.session("gpt-4o") as s:
        with s.round() as r:
            with r.tool("read_file"):
                ...
            r.usage(1200, 300)
        s.message_count(4)
    with pub.forward("/v1/chat/completions", "gpt-4o", is_stream=True) as f:
        f.complete(200, usage)

A block that raises completes its entity with status error (cancelled for CancelledError and
KeyboardInterrupt) and the exception's text; the exception propagates. Each works with
``async with`` too. Arguments are checked when given (ValueError); exits never raise.

A forward begun inside a session or round block is linked to them (forward.started's session_id
and round_id) unless it names its own: the innermost open block is kept in a context variable,
so this follows the code's nesting in threads and asyncio tasks alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import time
from typing import TYPE_CHECKING, Any

import uuid6

from contract.events import MAX_ERROR_LENGTH
from producer import checks

if TYPE_CHECKING:
    from producer.calls import EventCalls

log = logging.getLogger(__name__)

_CANCELLED = (asyncio.CancelledError, KeyboardInterrupt, GeneratorExit)

#: The innermost open session or round block: (session_id, round_id or None).
_OPEN: contextvars.ContextVar[tuple[str, str | None] | None] = contextvars.ContextVar(
    "metrics_open_scope", default=None
)


def current_link() -> tuple[str, str | None] | None:
    """(session_id, round_id or None) of the innermost open session or round block, else None."""
    return _OPEN.get()


def new_id() -> str:
    """A UUIDv7 string (time-ordered)."""
    return str(uuid6.uuid7())


def error_text(error: BaseException | str) -> str:
    """An exception or message as the contract's error text (no NUL, at most 16 KiB characters)."""
    text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    # Messages can carry file names os.fsdecode() made of undecodable bytes (lone surrogates):
    # escape them, or the sender could only drop the event and the round would stay open.
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text.replace("\x00", "\\0")[:MAX_ERROR_LENGTH]


class _Scope:
    """Sync and async context manager protocol over _begin/_end."""

    _opened: contextvars.Token[tuple[str, str | None] | None] | None = None

    def _begin(self) -> None:
        raise NotImplementedError

    def _end(self, exc: BaseException | None) -> None:
        raise NotImplementedError

    def _link(self) -> tuple[str, str | None] | None:
        """What forwards begun inside this block link to (None: nothing of its own)."""
        return None

    def __enter__(self) -> Any:
        self._begin()
        link = self._link()
        if link is not None:
            self._opened = _OPEN.set(link)
        return self

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        if self._opened is not None:
            with contextlib.suppress(ValueError):  # exited in another context than it was entered in
                _OPEN.reset(self._opened)
            self._opened = None
        try:
            self._end(exc)
        except ValueError:  # pragma: no cover - values were checked when given
            log.exception("metrics producer: could not record the end of %r", self)

    async def __aenter__(self) -> Any:
        return self.__enter__()

    async def __aexit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        self.__exit__(exc_type, exc, tb)


class SessionScope(_Scope):
    def __init__(
        self,
        publisher: EventCalls,
        model: str,
        session_id: str | None = None,
        *,
        user_id: str | None = None,
        provider: str | None = None,
    ) -> None:
        checks.label("model", model)
        if session_id is not None:
            checks.ident("session_id", session_id)
        checks.optional_ident("user_id", user_id)
        checks.optional_label("provider", provider)
        self.publisher = publisher
        self.model = model
        self.id = session_id or new_id()
        self.user_id = user_id
        #: The rounds' provider unless a round names its own.
        self.provider = provider
        #: Set to end with a given status (completed, awaiting_response, error, cancelled).
        self.status: str | None = None
        self._awaiting = False

    def _begin(self) -> None:
        self.publisher.session_started(self.id, self.model, user_id=self.user_id)

    def _link(self) -> tuple[str, str | None]:
        return (self.id, None)

    def _end(self, exc: BaseException | None) -> None:
        status = self.status or ("awaiting_response" if self._awaiting else "completed")
        if exc is not None:
            status = "cancelled" if isinstance(exc, _CANCELLED) else "error"
        self.publisher.session_completed(self.id, status)

    def round(
        self, model: str | None = None, round_id: str | None = None, *, provider: str | None = None
    ) -> RoundScope:
        """A round of this session: the session's model and provider unless given."""
        return RoundScope(
            self.publisher, self.id, model or self.model, round_id, provider=provider or self.provider
        )

    def message_count(self, count: int) -> None:
        self.publisher.session_message_count(self.id, count)

    def awaiting(self) -> None:
        """The agent waits for the user's answer (ends as awaiting_response unless resumed)."""
        self._awaiting = True
        self.publisher.session_awaiting(self.id)

    def resumed(self) -> None:
        self._awaiting = False
        self.publisher.session_resumed(self.id)


class RoundScope(_Scope):
    def __init__(
        self,
        publisher: EventCalls,
        session_id: str,
        model: str,
        round_id: str | None = None,
        *,
        provider: str | None = None,
    ) -> None:
        checks.label("model", model)
        if round_id is not None:
            checks.ident("round_id", round_id)
        checks.optional_label("provider", provider)
        self.publisher = publisher
        self.session_id = session_id
        self.model = model
        self.provider = provider
        self.id = round_id or new_id()
        self._usage: checks.Usage = (0, 0, 0, None, None, None)
        self._cached = 0
        self._status: str | None = None
        self._error: str | None = None
        self._clock = _Clock()

    def _begin(self) -> None:
        self._clock.start()
        self.publisher.round_started(self.id, self.session_id, self.model, provider=self.provider)

    def _link(self) -> tuple[str, str | None]:
        return (self.session_id, self.id)

    def _end(self, exc: BaseException | None) -> None:
        status, error = self._status or "success", self._error
        if exc is not None:
            status = "cancelled" if isinstance(exc, _CANCELLED) else "error"
            error = error_text(exc)
        self.publisher.round_completed(
            self.id,
            self.session_id,
            status,
            self._usage,
            self._cached,
            error,
            time_to_first_token_ms=self._clock.first_token_ms,
        )

    def usage(
        self,
        prompt_tokens: int,
        completion_tokens: int,
        total_tokens: int | None = None,
        *,
        cache_read_tokens: int | None = None,
        cache_write_tokens: int | None = None,
        reasoning_tokens: int | None = None,
    ) -> None:
        """The round's token counts; the cache parts are counted in ``prompt_tokens``, the reasoning
        part in ``completion_tokens`` (a part larger than its whole is a ValueError)."""
        self._usage = checks.usage(
            "usage",
            (prompt_tokens, completion_tokens, total_tokens),
            cache_read_tokens,
            cache_write_tokens,
            reasoning_tokens,
        )

    def first_token(self, ms: int | None = None) -> None:
        """The first token of a streamed answer arrived: now (measured from the block's start), or
        ``ms`` milliseconds after it."""
        self._clock.first_token(ms)

    def cached_tool_outputs(self, count: int) -> None:
        checks.count("prompt_cached_tool_outputs", count)
        self._cached = count

    def compressed(self, tokens_saved: int) -> None:
        self.publisher.round_compressed(self.id, self.session_id, tokens_saved)

    def fail(self, error: BaseException | str) -> None:
        """End with status error without raising."""
        self._status, self._error = "error", error_text(error)

    def cancel(self) -> None:
        self._status = "cancelled"

    def tool(self, name: str, tool_call_id: str | None = None) -> ToolScope:
        return ToolScope(self.publisher, self, name, tool_call_id)


class ToolScope(_Scope):
    def __init__(
        self, publisher: EventCalls, round_: RoundScope, name: str, tool_call_id: str | None
    ) -> None:
        checks.label("tool_name", name)
        if tool_call_id is not None:
            checks.ident("tool_call_id", tool_call_id)
        self.publisher = publisher
        self.round = round_
        self.name = name
        self.id = tool_call_id or new_id()
        self._error: str | None = None
        self._failed = False

    def _begin(self) -> None:
        self.publisher.tool_started(self.id, self.round.id, self.round.session_id, self.name)

    def _end(self, exc: BaseException | None) -> None:
        failed, error = self._failed, self._error
        if exc is not None:
            failed, error = True, error_text(exc)
        self.publisher.tool_completed(self.id, self.round.id, self.round.session_id, not failed, error)

    def fail(self, error: BaseException | str | None = None) -> None:
        """Record the call as failed without raising."""
        self._failed = True
        self._error = None if error is None else error_text(error)


class ForwardScope(_Scope):
    def __init__(
        self,
        publisher: EventCalls,
        endpoint: str,
        model: str,
        stream: bool,
        forward_id: str | None,
        *,
        provider: str | None = None,
        session_id: str | None = None,
        round_id: str | None = None,
    ) -> None:
        checks.label("endpoint", endpoint)
        checks.label("model", model)
        checks.flag("stream", stream)
        if forward_id is not None:
            checks.ident("forward_id", forward_id)
        checks.optional_label("provider", provider)
        checks.optional_ident("session_id", session_id)
        checks.optional_ident("round_id", round_id)
        self.publisher = publisher
        self.endpoint, self.model, self.stream, self.provider = endpoint, model, stream, provider
        self.id = forward_id or new_id()
        #: The session and round it is linked to: given, else the open block's when it begins.
        self.session_id, self.round_id = session_id, round_id
        self._status: str | None = None
        self._code: int | None = None
        self._usage: checks.Usage | None = None
        self._error: str | None = None
        self._clock = _Clock()

    def _begin(self) -> None:
        if self.session_id is None and self.round_id is None:
            self.session_id, self.round_id = current_link() or (None, None)
        self._clock.start()
        self.publisher.forward_started(
            self.id,
            self.endpoint,
            self.model,
            self.stream,
            provider=self.provider,
            session_id=self.session_id,
            round_id=self.round_id,
        )

    def first_token(self, ms: int | None = None) -> None:
        """As :meth:`RoundScope.first_token`, for the upstream's streamed answer."""
        self._clock.first_token(ms)

    def complete(
        self,
        status_code: int | None = None,
        usage: Any = None,
        status: str | None = None,
        error: str | None = None,
        *,
        cache_read_tokens: int | None = None,
        cache_write_tokens: int | None = None,
        reasoning_tokens: int | None = None,
    ) -> None:
        """Record the upstream's answer; status defaults to success below 400, error from 400. The
        usage parts as for :meth:`RoundScope.usage`."""
        checks.status_code("status_code", status_code)
        if status is not None:
            checks.choice("status", status, checks.FORWARD_STATUSES)
        self._code = status_code
        self._usage = checks.optional_usage(
            "usage", usage, cache_read_tokens, cache_write_tokens, reasoning_tokens
        )
        self._status = status or ("error" if status_code is not None and status_code >= 400 else "success")
        self._error = None if error is None else error_text(error)

    def _end(self, exc: BaseException | None) -> None:
        status, error = self._status or "success", self._error
        if exc is not None:
            status = "timeout" if isinstance(exc, TimeoutError) else "error"
            error = error_text(exc)
        self.publisher.forward_completed(
            self.id, status, self._code, self._usage, error, time_to_first_token_ms=self._clock.first_token_ms
        )


class _Clock:
    """Time to first token: milliseconds from a block's start to the first token it reported."""

    __slots__ = ("first_token_ms", "started")

    def __init__(self) -> None:
        self.started: float | None = None
        self.first_token_ms: int | None = None

    def start(self) -> None:
        self.started = time.monotonic()

    def first_token(self, ms: int | None) -> None:
        if ms is not None:
            checks.count("time_to_first_token_ms", ms)
            self.first_token_ms = ms
        elif self.first_token_ms is None and self.started is not None:  # the first one counts
            self.first_token_ms = max(0, round((time.monotonic() - self.started) * 1000))
