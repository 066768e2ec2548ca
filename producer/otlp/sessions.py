"""Which session and user a span belongs to, as a request shows it, and the session events it
sends.

- A span's session is its own session attribute, else the nearest ancestor's in the request,
  else its resource's, else its trace id; its user likewise (none: no user).
- Each request that holds spans of a session sends one session.started, id
  ``session/<session id>/session.started``, at the earliest of them, with the model of its
  earliest round (else of an agent span) and the user of its earliest span that names one. The
  worker keeps the earliest start time and the latest start's model and user, so requests
  converge in any order.
- OTLP says nothing of a conversation's end: the session stays open until reconcile's grace
  (contract/liveness.py), except a trace's own session, which its root span's end completes (the
  root ends last: the trace is done).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from producer.otlp import attributes as attrs
from producer.otlp import build
from producer.otlp.attributes import Refused
from producer.otlp.build import Wire
from producer.otlp.ids import event_id
from producer.otlp.spans import Span
from producer.otlp.tree import Found, Key, Tree

Mark = tuple[int, str, str]  # (start ns, span id, trace id): the earliest span wins


@dataclass(slots=True)
class _Session:
    """What a request shows of one session."""

    first: Mark
    model: tuple[int, str, str, str] | None = None  # mark + the earliest round's model
    agent_model: tuple[int, str, str, str] | None = None  # mark + the earliest agent span's model
    user: tuple[int, str, str, str] | None = None  # mark + the earliest user id

    def saw(self, mark: Mark, user: str | None, model: str | None, agent: str | None) -> None:
        self.first = min(self.first, mark)
        if user is not None and (self.user is None or mark < self.user[:3]):
            self.user = (*mark, user)
        if model is not None and (self.model is None or mark < self.model[:3]):
            self.model = (*mark, model)
        if agent is not None and (self.agent_model is None or mark < self.agent_model[:3]):
            self.agent_model = (*mark, agent)


class Sessions:
    """The sessions of one request's spans."""

    def __init__(self, tree: Tree) -> None:
        self.tree = tree
        self._seen: dict[str, _Session] = {}
        self._sessions_above: dict[Key, Found | None] = {}
        self._users_above: dict[Key, Found | None] = {}
        self._resources: dict[int, tuple[Found | None, Found | None]] = {}

    def of(self, span: Span) -> Found:
        """(session id, its attribute): the span's, an ancestor's, the resource's, or the trace id."""
        found = self.tree.above(span, attrs.session, self._sessions_above)
        if found is None:
            found = self._resource(span.resource)[0]
        return found if found is not None else (span.trace_id, "trace_id")

    def user(self, span: Span) -> str | None:
        found = self.tree.above(span, attrs.user, self._users_above)
        if found is None:
            found = self._resource(span.resource)[1]
        return found[0] if found is not None else None

    def saw(
        self,
        session_id: str,
        span: Span,
        user: str | None,
        model: str | None = None,
        agent: str | None = None,
    ) -> None:
        """``span`` belongs to ``session_id``: its start, user and (a round's or an agent's) model."""
        mark = (span.start_ns, span.span_id, span.trace_id)
        seen = self._seen.get(session_id)
        if seen is None:
            seen = self._seen[session_id] = _Session(mark)
        seen.saw(mark, user, model, agent)

    def trace_end(self, span: Span, session_id: str, session_key: str) -> tuple[Wire, ...]:
        """session.completed when ``span`` is the root of a trace that is its own session."""
        if span.parent_span_id is not None or session_key != "trace_id":
            return ()
        failed = attrs.failed(span)
        status = ("cancelled" if attrs.cancelled(span) else "error") if failed else "completed"
        return (build.session_completed(span, session_id, status),)

    def starts(self) -> list[Wire]:
        """One session.started per session that names a model, in session id order (its values
        were all checked where they were read)."""
        starts: list[Wire] = []
        for session_id in sorted(self._seen):
            seen = self._seen[session_id]
            model = seen.model or seen.agent_model
            if model is None:
                continue  # no model in this request: another request's session.started names it
            starts.append(
                build.session_started(
                    event_id(f"session/{session_id}/session.started"),
                    seen.first[0],
                    session_id,
                    model[3],
                    seen.user[3] if seen.user else None,
                )
            )
        return starts

    def _resource(self, resource: Mapping[str, Any]) -> tuple[Found | None, Found | None]:
        """The resource's (session, user): read once per resource of the request."""
        cached = self._resources.get(id(resource))
        if cached is None:
            try:
                cached = (attrs.session(resource), attrs.user(resource))
            except Refused as refused:
                raise Refused(f"resource {refused.field}", refused.reason) from None
            self._resources[id(resource)] = cached
        return cached
