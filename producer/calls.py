"""The typed publish calls, one per event of the contract, that the Publisher offers.

A call checks its arguments (ValueError naming the argument when a type or range is wrong),
drops calls for a session already completed (counted in ``dropped_after_complete``) and hands
``(WireType, time_ns, event_id | None, occurred_at | None, *values)`` to its :class:`Sink` (the
Publisher's outbox, producer/outbox.py); the sender thread encodes it (producer/wire.py).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from datetime import datetime
from typing import Any, Protocol

from contract.events import EVENT_TYPES
from producer import checks, wire
from producer.checks import FORWARD_STATUSES, ROUND_STATUSES, SESSION_STATUSES
from producer.hints import HintWriter
from producer.lifecycle import ForwardScope, SessionScope
from producer.metrics import Counters
from producer.wire import Item

log = logging.getLogger(__name__)

_time_ns = time.time_ns


class Sink(Protocol):
    """Where the calls hand their items: never blocks for long, never raises."""

    def put(self, item: Item) -> None: ...

    def wake(self) -> None:
        """Something changed that is not an item (a liveness hint): have the sender look."""


class EventCalls:
    """The event calls of :class:`producer.Publisher`. Everything they use is given here: the
    ``sink`` for items, the session ``hints``, the ``counters``, and how many completed sessions
    to remember (their late calls are dropped)."""

    def __init__(self, sink: Sink, hints: HintWriter, counters: Counters, remember_completed: int) -> None:
        self._sink = sink
        self.hints = hints
        self.counters = counters
        self._remember = remember_completed
        self._completed: OrderedDict[str, bool] = OrderedDict()  # session_id -> late call warned
        self._completed_lock = threading.Lock()

    def _after_fork_in_child(self) -> None:
        self._completed_lock = threading.Lock()  # another thread may have held it at the fork

    # -- scopes: a block's calls, begun and ended for you ------------------------------------

    def session(
        self,
        model: str,
        session_id: str | None = None,
        *,
        user_id: str | None = None,
        provider: str | None = None,
    ) -> SessionScope:
        """``with pub.session(model) as s:`` emits session.started, then session.completed with
        status error/cancelled if the block raised, awaiting_response if left awaiting.
        ``provider``: its rounds' unless a round names its own."""
        return SessionScope(self, model, session_id, user_id=user_id, provider=provider)

    def forward(
        self,
        endpoint: str,
        model: str,
        is_stream: bool = False,
        forward_id: str | None = None,
        *,
        stream: bool | None = None,
        provider: str | None = None,
        session_id: str | None = None,
        round_id: str | None = None,
    ) -> ForwardScope:
        """``with pub.forward(endpoint, model, is_stream=True) as f: f.complete(200, usage)``.
        ``is_stream`` is the contract's name (as in forward_started); ``stream=`` is the older one.
        Inside a ``pub.session`` or ``s.round`` block the forward is linked to that session and
        round, unless ``session_id`` or ``round_id`` is given."""
        return ForwardScope(
            self,
            endpoint,
            model,
            is_stream if stream is None else stream,
            forward_id,
            provider=provider,
            session_id=session_id,
            round_id=round_id,
        )

    # -- sessions ---------------------------------------------------------------------------

    def session_started(
        self,
        session_id: str,
        model: str,
        *,
        user_id: str | None = None,
        event_id: str | None = None,
        occurred_at: datetime | None = None,
    ) -> None:
        """``user_id``: the end user the session works for (optional)."""
        checks.ident("session_id", session_id)
        checks.label("model", model)
        checks.optional_ident("user_id", user_id)
        # A start re-opens a completed session, as the seed's start_session does (a chat's next
        # turn under the same id): the calls after it are the new turn's, not late ones.
        with self._completed_lock:
            self._completed.pop(session_id, None)
        self._emit(wire.SESSION_STARTED, session_id, event_id, occurred_at, session_id, model, user_id)
        self.hints.opened(session_id)

    def session_message_count(
        self,
        session_id: str,
        message_count: int,
        *,
        event_id: str | None = None,
        occurred_at: datetime | None = None,
    ) -> None:
        checks.ident("session_id", session_id)
        checks.count("message_count", message_count)
        self._emit(wire.SESSION_MESSAGE_COUNT, session_id, event_id, occurred_at, session_id, message_count)

    def session_completed(
        self,
        session_id: str,
        status: str = "completed",
        *,
        event_id: str | None = None,
        occurred_at: datetime | None = None,
    ) -> None:
        """The session's end; later calls for it are dropped (counted in dropped_after_complete)
        until a session_started re-opens it."""
        checks.ident("session_id", session_id)
        checks.choice("status", status, SESSION_STATUSES)
        if session_id in self._completed:
            self._after_completion(session_id, "session.completed")
            return
        self._emit(wire.SESSION_COMPLETED, session_id, event_id, occurred_at, session_id, status)
        with self._completed_lock:
            self._completed[session_id] = False
            if len(self._completed) > self._remember:
                self._completed.popitem(last=False)
        self.hints.closed(session_id)

    def session_awaiting(self, session_id: str, since: float | None = None) -> None:
        """Mark the session as waiting for the user's answer (``since``: unix seconds, default now)."""
        checks.ident("session_id", session_id)
        at = time.time() if since is None else checks.timestamp("since", since)
        if session_id not in self._completed:
            self.hints.awaiting(session_id, at)
            self._sink.wake()

    def session_resumed(self, session_id: str) -> None:
        """The user answered: the session is no longer awaiting a response."""
        checks.ident("session_id", session_id)
        if session_id not in self._completed:
            self.hints.resumed(session_id)
            self._sink.wake()

    # -- rounds and tools -------------------------------------------------------------------

    def round_started(
        self,
        round_id: str,
        session_id: str,
        model: str,
        *,
        provider: str | None = None,
        event_id: str | None = None,
        occurred_at: datetime | None = None,
    ) -> None:
        """``provider``: OpenTelemetry's gen_ai.provider.name (openai, anthropic, aws.bedrock, ...)."""
        checks.ident("round_id", round_id)
        checks.ident("session_id", session_id)
        checks.label("model", model)
        checks.optional_label("provider", provider)
        self._emit(
            wire.ROUND_STARTED, session_id, event_id, occurred_at, round_id, session_id, model, provider
        )

    def round_completed(
        self,
        round_id: str,
        session_id: str,
        status: str,
        usage: Any,
        prompt_cached_tool_outputs: int = 0,
        error: str | None = None,
        *,
        time_to_first_token_ms: int | None = None,
        cache_read_tokens: int | None = None,
        cache_write_tokens: int | None = None,
        reasoning_tokens: int | None = None,
        event_id: str | None = None,
        occurred_at: datetime | None = None,
    ) -> None:
        """``usage``: a TokenUsage, a mapping of *_tokens, or (prompt, completion[, total]).
        ``cache_read_tokens`` and ``cache_write_tokens`` are parts of its prompt tokens,
        ``reasoning_tokens`` of its completion tokens (given here, they win over usage's own);
        ``time_to_first_token_ms`` for a streamed answer."""
        checks.ident("round_id", round_id)
        checks.ident("session_id", session_id)
        checks.choice("status", status, ROUND_STATUSES)
        tokens = checks.usage("usage", usage, cache_read_tokens, cache_write_tokens, reasoning_tokens)
        checks.count("prompt_cached_tool_outputs", prompt_cached_tool_outputs)
        checks.error_text("error", error)
        checks.optional_count("time_to_first_token_ms", time_to_first_token_ms)
        values = (
            round_id,
            session_id,
            status,
            tokens,
            prompt_cached_tool_outputs,
            error,
            time_to_first_token_ms,
        )
        self._emit(wire.ROUND_COMPLETED, session_id, event_id, occurred_at, *values)

    def round_compressed(
        self,
        round_id: str,
        session_id: str,
        tokens_saved: int,
        *,
        event_id: str | None = None,
        occurred_at: datetime | None = None,
    ) -> None:
        checks.ident("round_id", round_id)
        checks.ident("session_id", session_id)
        checks.count("tokens_saved", tokens_saved)
        self._emit(
            wire.ROUND_COMPRESSED, session_id, event_id, occurred_at, round_id, session_id, tokens_saved
        )

    def tool_started(
        self,
        tool_call_id: str,
        round_id: str,
        session_id: str,
        tool_name: str,
        *,
        event_id: str | None = None,
        occurred_at: datetime | None = None,
    ) -> None:
        checks.ident("tool_call_id", tool_call_id)
        checks.ident("round_id", round_id)
        checks.ident("session_id", session_id)
        checks.label("tool_name", tool_name)
        values = (tool_call_id, round_id, session_id, tool_name)
        self._emit(wire.TOOL_STARTED, session_id, event_id, occurred_at, *values)

    def tool_completed(
        self,
        tool_call_id: str,
        round_id: str,
        session_id: str,
        success: bool,
        error: str | None = None,
        *,
        event_id: str | None = None,
        occurred_at: datetime | None = None,
    ) -> None:
        checks.ident("tool_call_id", tool_call_id)
        checks.ident("round_id", round_id)
        checks.ident("session_id", session_id)
        checks.flag("success", success)
        checks.error_text("error", error)
        values = (tool_call_id, round_id, session_id, success, error)
        self._emit(wire.TOOL_COMPLETED, session_id, event_id, occurred_at, *values)

    # -- forwards and the rest --------------------------------------------------------------

    def forward_started(
        self,
        forward_id: str,
        endpoint: str,
        model: str,
        is_stream: bool,
        *,
        provider: str | None = None,
        session_id: str | None = None,
        round_id: str | None = None,
        event_id: str | None = None,
        occurred_at: datetime | None = None,
    ) -> None:
        """``session_id`` / ``round_id``: the session and round the request was made for, if any
        (a round without its session is allowed: the contract takes either)."""
        checks.ident("forward_id", forward_id)
        checks.label("endpoint", endpoint)
        checks.label("model", model)
        checks.flag("is_stream", is_stream)
        checks.optional_label("provider", provider)
        checks.optional_ident("session_id", session_id)
        checks.optional_ident("round_id", round_id)
        values = (forward_id, endpoint, model, is_stream, provider, session_id, round_id)
        # Not dropped after its session's completion: a link is not one of the session's events.
        self._emit(wire.FORWARD_STARTED, None, event_id, occurred_at, *values)

    def forward_completed(
        self,
        forward_id: str,
        status: str,
        status_code: int | None = None,
        usage: Any = None,
        error: str | None = None,
        *,
        time_to_first_token_ms: int | None = None,
        cache_read_tokens: int | None = None,
        cache_write_tokens: int | None = None,
        reasoning_tokens: int | None = None,
        event_id: str | None = None,
        occurred_at: datetime | None = None,
    ) -> None:
        """The usage parts and ``time_to_first_token_ms`` as for :meth:`round_completed`."""
        checks.ident("forward_id", forward_id)
        checks.choice("status", status, FORWARD_STATUSES)
        checks.status_code("status_code", status_code)
        tokens = checks.optional_usage(
            "usage", usage, cache_read_tokens, cache_write_tokens, reasoning_tokens
        )
        checks.error_text("error", error)
        checks.optional_count("time_to_first_token_ms", time_to_first_token_ms)
        values = (forward_id, status, status_code, tokens, error, time_to_first_token_ms)
        self._emit(wire.FORWARD_COMPLETED, None, event_id, occurred_at, *values)

    def sync_mismatch(
        self, reason: str, *, event_id: str | None = None, occurred_at: datetime | None = None
    ) -> None:
        checks.label("reason", reason)
        self._emit(wire.SYNC_MISMATCH, None, event_id, occurred_at, reason)

    def publish(self, event: Any) -> None:
        """Send a ready-made contract event as it is (the CLI's replay): no liveness hints and no
        check against completed sessions."""
        if not isinstance(event, EVENT_TYPES):
            raise checks.bad("event", event, "a contract event model (contract.events)")
        self._sink.put((wire.PREBUILT, _time_ns(), None, None, event))

    # -- shared by the calls ---------------------------------------------------------------

    def _emit(
        self,
        wire_type: wire.WireType,
        session_id: str | None,
        event_id: str | None,
        occurred_at: datetime | None,
        *values: Any,
    ) -> None:
        """Check the optional metadata, drop calls for completed sessions, enqueue."""
        if event_id is not None or occurred_at is not None:
            checks.given(event_id, occurred_at)
        if session_id is not None and session_id in self._completed:
            self._after_completion(session_id, wire_type.type)
            return
        self._sink.put((wire_type, _time_ns(), event_id, occurred_at, *values))

    def _after_completion(self, session_id: str, event_type: str) -> None:
        self.counters.add("dropped_after_complete")
        if not self._completed.get(session_id, True):
            self._completed[session_id] = True
            log.warning(
                "metrics producer: %s for session %s after its session.completed; dropped (counted "
                "in dropped_after_complete; further ones for this session are not logged; a "
                "session_started re-opens it)",
                event_type,
                session_id,
            )
