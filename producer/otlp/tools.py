"""Tool call spans (``execute_tool``, OpenInference TOOL) -> tool.started and tool.completed, tied
to the round that asked for them: the parent span if a round, else the nearest round ancestor in
the request, else the round whose answer carried the call id, else the latest round beside it
(same parent) that ended before it started, else a round id made from its parent span (the right
one when the parent is a round sent in another request).
"""

from __future__ import annotations

from contract.events import MAX_ID_LENGTH
from producer.otlp import attributes as attrs
from producer.otlp import build
from producer.otlp.attributes import Refused
from producer.otlp.build import Wire, check_times
from producer.otlp.ids import entity_id
from producer.otlp.sessions import Sessions
from producer.otlp.spans import Span
from producer.otlp.tree import Key, Tree

_CALL_ID_KEYS = ("gen_ai.tool.call.id", "tool.id", "tool_call.id")


def tool_events(span: Span, tree: Tree, sessions: Sessions, rounds: RoundOfTool) -> tuple[Wire, ...]:
    """A tool call's events (and its trace's session.completed when it is the trace's root)."""
    check_times(span)
    # The GenAI conventions name the span "execute_tool <tool>", OpenInference after the tool.
    openinference = "gen_ai.operation.name" not in span.attributes
    name = build.name(attrs.tool_name(span, "" if openinference else "execute_tool "), "gen_ai.tool.name")
    session_id, session_key = sessions.of(span)
    user = sessions.user(span)
    err = build.error(attrs.error_text(span)) if attrs.failed(span) else None
    call_id = entity_id(span.trace_id, span.span_id)
    round_id = rounds.of(span)
    started = build.tool_started(span, call_id, round_id, session_id, name)
    completed = build.tool_completed(span, call_id, round_id, session_id, err)
    ended = sessions.trace_end(span, session_id, session_key)
    sessions.saw(session_id, span, user)
    return (started, completed, *ended)


class RoundOfTool:
    """Which round asked for a tool call, with the request's indexes built when first needed."""

    def __init__(self, tree: Tree) -> None:
        self.tree = tree
        self._siblings: dict[tuple[str, str | None], list[Span]] | None = None
        self._calls: dict[Key, Span] | None = None

    def of(self, span: Span) -> str:
        """The round id of the tool call ``span``."""
        trace = span.trace_id
        for above in self.tree.ancestors(span):
            if self.tree.role_of(above) == attrs.ROUND:
                return entity_id(trace, above.span_id)
        try:
            call = attrs.text(span.attributes, _CALL_ID_KEYS, MAX_ID_LENGTH)
        except Refused:
            call = None  # an id we cannot read ties nothing; the call is still mapped
        if call is not None:
            asked = self._call_index().get((trace, call[0]))
            if asked is not None:
                return entity_id(trace, asked.span_id)
        siblings = self._sibling_index().get((trace, span.parent_span_id), ())
        before = [r for r in siblings if r.end_ns <= span.start_ns]
        if before:
            return entity_id(trace, max(before, key=lambda r: (r.end_ns, r.span_id)).span_id)
        return entity_id(trace, span.parent_span_id or span.span_id)

    def _sibling_index(self) -> dict[tuple[str, str | None], list[Span]]:
        if self._siblings is None:
            self._siblings = {}
            for span in self.tree.of_role(attrs.ROUND):
                self._siblings.setdefault((span.trace_id, span.parent_span_id), []).append(span)
        return self._siblings

    def _call_index(self) -> dict[Key, Span]:
        """(trace id, tool call id) -> the earliest round whose answer asked for that call."""
        if self._calls is None:
            self._calls = {}
            for span in self.tree.of_role(attrs.ROUND):
                for call in attrs.tool_call_ids(span.attributes):
                    known = self._calls.get((span.trace_id, call))
                    if known is None or (span.start_ns, span.span_id) < (known.start_ns, known.span_id):
                        self._calls[(span.trace_id, call)] = span
        return self._calls
