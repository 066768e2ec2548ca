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
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

import uuid6

from contract.events import MAX_ERROR_LENGTH
from producer import checks

if TYPE_CHECKING:
    from producer.calls import EventCalls

log = logging.getLogger(__name__)

_CANCELLED = (asyncio.CancelledError, KeyboardInterrupt, GeneratorExit)


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

    def _begin(self) -> None:
        raise NotImplementedError

    def _end(self, exc: BaseException | None) -> None:
        raise NotImplementedError

    def __enter__(self) -> Any:
        self._begin()
        return self

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        try:
            self._end(exc)
        except ValueError:  # pragma: no cover - values were checked when given
            log.exception("metrics producer: could not record the end of %r", self)

    async def __aenter__(self) -> Any:
        return self.__enter__()

    async def __aexit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        self.__exit__(exc_type, exc, tb)


class SessionScope(_Scope):
    def __init__(self, publisher: EventCalls, model: str, session_id: str | None = None) -> None:
        checks.label("model", model)
        if session_id is not None:
            checks.ident("session_id", session_id)
        self.publisher = publisher
        self.model = model
        self.id = session_id or new_id()
        #: Set to end with a given status (completed, awaiting_response, error, cancelled).
        self.status: str | None = None
        self._awaiting = False

    def _begin(self) -> None:
        self.publisher.session_started(self.id, self.model)

    def _end(self, exc: BaseException | None) -> None:
        status = self.status or ("awaiting_response" if self._awaiting else "completed")
        if exc is not None:
            status = "cancelled" if isinstance(exc, _CANCELLED) else "error"
        self.publisher.session_completed(self.id, status)

    def round(self, model: str | None = None, round_id: str | None = None) -> RoundScope:
        return RoundScope(self.publisher, self.id, model or self.model, round_id)

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
        self, publisher: EventCalls, session_id: str, model: str, round_id: str | None = None
    ) -> None:
        checks.label("model", model)
        if round_id is not None:
            checks.ident("round_id", round_id)
        self.publisher = publisher
        self.session_id = session_id
        self.model = model
        self.id = round_id or new_id()
        self._usage: checks.Usage = (0, 0, 0)
        self._cached = 0
        self._status: str | None = None
        self._error: str | None = None

    def _begin(self) -> None:
        self.publisher.round_started(self.id, self.session_id, self.model)

    def _end(self, exc: BaseException | None) -> None:
        status, error = self._status or "success", self._error
        if exc is not None:
            status = "cancelled" if isinstance(exc, _CANCELLED) else "error"
            error = error_text(exc)
        self.publisher.round_completed(self.id, self.session_id, status, self._usage, self._cached, error)

    def usage(self, prompt_tokens: int, completion_tokens: int, total_tokens: int | None = None) -> None:
        self._usage = checks.usage("usage", (prompt_tokens, completion_tokens, total_tokens))

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
        self, publisher: EventCalls, endpoint: str, model: str, stream: bool, forward_id: str | None
    ) -> None:
        checks.label("endpoint", endpoint)
        checks.label("model", model)
        checks.flag("stream", stream)
        if forward_id is not None:
            checks.ident("forward_id", forward_id)
        self.publisher = publisher
        self.endpoint, self.model, self.stream = endpoint, model, stream
        self.id = forward_id or new_id()
        self._status: str | None = None
        self._code: int | None = None
        self._usage: checks.Usage | None = None
        self._error: str | None = None

    def _begin(self) -> None:
        self.publisher.forward_started(self.id, self.endpoint, self.model, self.stream)

    def complete(
        self,
        status_code: int | None = None,
        usage: Any = None,
        status: str | None = None,
        error: str | None = None,
    ) -> None:
        """Record the upstream's answer; status defaults to success below 400, error from 400."""
        checks.status_code("status_code", status_code)
        if status is not None:
            checks.choice("status", status, checks.FORWARD_STATUSES)
        self._code = status_code
        self._usage = checks.optional_usage("usage", usage)
        self._status = status or ("error" if status_code is not None and status_code >= 400 else "success")
        self._error = None if error is None else error_text(error)

    def _end(self, exc: BaseException | None) -> None:
        status, error = self._status or "success", self._error
        if exc is not None:
            status = "timeout" if isinstance(exc, TimeoutError) else "error"
            error = error_text(exc)
        self.publisher.forward_completed(self.id, status, self._code, self._usage, error)
