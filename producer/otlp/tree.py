"""One export request's spans as a forest: indexed by (trace id, span id), each with its role,
walked up from any span to its ancestors in the request. Spans whose parent was sent in another
request are roots here; a span sent twice in one request is kept once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from producer.otlp import attributes as attrs
from producer.otlp.attributes import Refused
from producer.otlp.spans import Span

Key = tuple[str, str]  # (trace id, span id)
Found = tuple[str, str]  # (value, the attribute it came from)


class Tree:
    """The spans of one request and their roles (producer/otlp/attributes.py's ``role``)."""

    def __init__(self, spans: Sequence[Span]) -> None:
        self.spans: dict[Key, Span] = {}
        self.roles: dict[Key, int] = {}
        for span in spans:
            key = (span.trace_id, span.span_id)
            if key not in self.spans:  # a span sent twice in one request is mapped once
                self.spans[key] = span
                self.roles[key] = attrs.role(span)

    def role_of(self, span: Span) -> int:
        return self.roles[(span.trace_id, span.span_id)]

    def ancestors(self, span: Span) -> Iterator[Span]:
        """The span's ancestors present in the request, nearest first (a parent cycle ends it)."""
        seen = {span.span_id}
        parent = span.parent_span_id
        while parent is not None and parent not in seen:
            above = self.spans.get((span.trace_id, parent))
            if above is None:
                return
            yield above
            seen.add(parent)
            parent = above.parent_span_id

    def above(
        self, span: Span, read: Callable[[Mapping[str, Any]], Found | None], memo: dict[Key, Found | None]
    ) -> Found | None:
        """What ``read`` finds on the span or its nearest ancestor in the request that has it
        (memoised in ``memo`` along the way: each span of a request is read once). A refusal on
        an ancestor names that ancestor."""
        chain: list[Key] = []
        current = span
        found: Found | None = None
        while True:
            key = (current.trace_id, current.span_id)
            if key in memo:
                found = memo[key]
                break
            chain.append(key)
            try:
                found = read(current.attributes)
            except Refused as refused:
                if current is span:
                    raise
                reason = f"{refused.reason} (on ancestor span {current.span_id})"
                raise Refused(refused.field, reason) from None
            parent = None if current.parent_span_id is None else (current.trace_id, current.parent_span_id)
            if found is not None or parent is None or parent in chain or parent not in self.spans:
                break
            current = self.spans[parent]
        for key in chain:
            memo[key] = found
        return found

    def of_role(self, role: int) -> Iterator[Span]:
        for key, span in self.spans.items():
            if self.roles[key] == role:
                yield span
