"""Spans of one OTLP export request -> the contract's events, deterministically, each request on its
own (README: From OpenTelemetry, How spans map).

A span's role (producer/otlp/attributes.py) picks its handler: a round makes round.started and
round.completed here; a tool call, producer/otlp/tools.py's events; an HTTP client span under a
GenAI span, producer/otlp/forwards.py's; an agent or chain span only belongs to its session
(producer/otlp/sessions.py, which also sends each session's session.started). Ids are
producer/otlp/ids.py's; each event is written to its wire JSON by producer/otlp/build.py. A span
that is none of these is ignored; one whose attributes cannot make valid events is a
:class:`~producer.otlp.spans.Rejection` naming the span and the attribute, and gives no event.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from contract import codec
from contract.events import Event
from producer.otlp import attributes as attrs
from producer.otlp import build
from producer.otlp.attributes import Refused
from producer.otlp.build import Wire, check_times
from producer.otlp.forwards import forward_events
from producer.otlp.ids import entity_id
from producer.otlp.sessions import Sessions
from producer.otlp.spans import Rejection, Span
from producer.otlp.tools import RoundOfTool, tool_events
from producer.otlp.tree import Tree


@dataclass(frozen=True, slots=True)
class Mapped:
    """What one request's spans became: its events as (routing id, wire JSON), in order, and the
    spans that could not become any."""

    wire: list[Wire]
    rejected: list[Rejection]

    @property
    def events(self) -> list[Event]:
        """The events, read back by the contract (contract.codec.decode), as a worker reads them."""
        return [codec.decode(raw) for _, raw in self.wire]


def map_spans(spans: Sequence[Span]) -> Mapped:
    """Map the spans of one export request (any number of traces); the same spans always give the
    same events, whatever else was sent before or after."""
    tree = Tree(spans)
    sessions = Sessions(tree)
    rounds = RoundOfTool(tree)
    handlers: dict[int, Callable[[Span, int], tuple[Wire, ...]]] = {
        attrs.ROUND: lambda span, role: _round_events(span, sessions),
        attrs.TOOL: lambda span, role: tool_events(span, tree, sessions, rounds),
        attrs.AGENT: lambda span, role: _member(span, role, sessions),
        attrs.CHAIN: lambda span, role: _member(span, role, sessions),
        attrs.HTTP: lambda span, role: forward_events(span, tree, sessions),
    }
    events: list[Wire] = []
    rejected: list[Rejection] = []
    for key, span in tree.spans.items():
        role = tree.roles[key]
        handler = handlers.get(role)
        if handler is None:
            continue
        try:
            events += handler(span, role)
        except Refused as refused:
            rejected.append(Rejection(span.span_id, span.trace_id, span.name, refused.field, refused.reason))
    return Mapped(sessions.starts() + events, rejected)


def _round_events(span: Span, sessions: Sessions) -> tuple[Wire, ...]:
    check_times(span)
    a = span.attributes
    found = attrs.model(a)
    if found is None:
        raise Refused(
            "gen_ai.request.model",
            "is required: a round's model is read from gen_ai.response.model, gen_ai.request.model "
            "or llm.model_name, and the span has none of them",
        )
    model = found[0]
    provider = attrs.provider(a)
    usage = build.usage(attrs.usage(a, provider, model))
    ttft = attrs.time_to_first_token_ms(span)
    session_id, session_key = sessions.of(span)
    user = sessions.user(span)
    round_id = entity_id(span.trace_id, span.span_id)
    failed = attrs.failed(span)
    status = ("cancelled" if attrs.cancelled(span) else "error") if failed else "success"
    err = build.error(attrs.error_text(span)) if failed else None
    started = build.round_started(span, round_id, session_id, model, provider)
    completed = build.round_completed(span, round_id, session_id, status, usage, err, ttft)
    ended = sessions.trace_end(span, session_id, session_key)
    sessions.saw(session_id, span, user, model=model)
    return (started, completed, *ended)


def _member(span: Span, role: int, sessions: Sessions) -> tuple[Wire, ...]:
    """An agent or chain span: no event of its own, but its session's (its start; an agent's
    model when the request has no round; a trace's root ends the trace's session)."""
    check_times(span)
    session_id, session_key = sessions.of(span)
    user = sessions.user(span)
    model = None
    if role == attrs.AGENT:
        try:
            found = attrs.model(span.attributes)
        except Refused:
            found = None  # only a fallback for the session's model: a round's is preferred
        model = found[0] if found else None
    ended = sessions.trace_end(span, session_id, session_key)
    sessions.saw(session_id, span, user, agent=model)
    return ended
