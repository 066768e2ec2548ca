"""A minimal stand-in for producer/otlp/mapping.py's ``map_spans`` until that branch is merged:
a chat span with a model becomes round.started + round.completed (the trace is the session, ids
derived from trace, span and kind); one without is rejected naming ``gen_ai.request.model``.
Only for these tests; the receiver itself imports the real mapping."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from contract.events import Event, RoundCompleted, RoundStarted, TokenUsage
from producer.otlp.spans import Rejection, Span


@dataclass(frozen=True, slots=True)
class Mapped:
    events: list[Event]
    rejected: list[Rejection]


def _id(span: Span, kind: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_OID, f"{span.trace_id}/{span.span_id}/{kind}"))


def map_spans(spans: Sequence[Span]) -> Mapped:
    events: list[Event] = []
    rejected: list[Rejection] = []
    for span in spans:
        model = span.attributes.get("gen_ai.request.model")
        if not isinstance(model, str) or not model:
            rejected.append(
                Rejection(span.span_id, span.trace_id, span.name, "gen_ai.request.model", "missing")
            )
            continue
        prompt = int(span.attributes.get("gen_ai.usage.input_tokens", 0))
        completion = int(span.attributes.get("gen_ai.usage.output_tokens", 0))
        start = datetime.fromtimestamp(span.start_ns / 1e9, UTC)
        end = datetime.fromtimestamp(span.end_ns / 1e9, UTC)
        events.append(
            RoundStarted(
                event_id=_id(span, "round.started"),
                occurred_at=start,
                round_id=span.span_id,
                session_id=span.trace_id,
                model=model,
                provider="openai",
            )
        )
        events.append(
            RoundCompleted(
                event_id=_id(span, "round.completed"),
                occurred_at=end,
                round_id=span.span_id,
                session_id=span.trace_id,
                status="success",
                usage=TokenUsage(
                    prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion
                ),
            )
        )
    return Mapped(events, rejected)
