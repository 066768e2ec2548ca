"""Shared by the client scripts (they run in the clients' own venv, .venv-otel, not the project's):
a tracer provider that exports with the OTLP/HTTP exporter a user would configure, through the
environment only (OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_HEADERS), and keeps a copy of
every span in an InMemorySpanExporter; at the end, what that copy saw is printed as one JSON
document on stdout, with each export's result, for the test to compare with PostgreSQL."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


def otlp_exporter(kind: str) -> SpanExporter:
    """The exporter of ``kind`` (proto or json), configured by the environment alone."""
    if kind == "proto":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    elif kind == "json":
        from opentelemetry.exporter.otlp.json.http.trace_exporter import OTLPSpanExporter
    else:
        raise SystemExit(f"--exporter: {kind!r}: proto or json")
    return OTLPSpanExporter()


class Recording(SpanExporter):
    """Passes every batch on, and keeps each export's result (a failed export fails the test)."""

    def __init__(self, inner: SpanExporter) -> None:
        self.inner = inner
        self.results: list[str] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        result = self.inner.export(spans)
        self.results.append(f"{result.name} ({len(spans)} spans)")
        return result

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self.inner.force_flush(timeout_millis)


class Client:
    def __init__(self, exporter: str, service: str) -> None:
        self.memory = InMemorySpanExporter()
        self.recording = Recording(otlp_exporter(exporter))
        self.exporter = exporter
        self.provider = TracerProvider(resource=Resource.create({"service.name": service}))
        self.provider.add_span_processor(SimpleSpanProcessor(self.memory))
        self.provider.add_span_processor(BatchSpanProcessor(self.recording))
        trace.set_tracer_provider(self.provider)

    def finish(self, resend: bool = False, **extra: Any) -> None:
        """Flush, optionally export every span once more (a client's retry after an ambiguous
        failure sends the same spans again), and print what the in-memory exporter saw."""
        self.provider.force_flush()
        spans = self.memory.get_finished_spans()
        if resend:
            again = Recording(otlp_exporter(self.exporter))
            again.export(spans)
            self.recording.results += [f"resent: {r}" for r in again.results]
            again.shutdown()
        self.provider.shutdown()
        doc = {"spans": [as_json(s) for s in spans], "exports": self.recording.results, **extra}
        json.dump(doc, sys.stdout)
        sys.stdout.write("\n")


def as_json(span: ReadableSpan) -> dict[str, Any]:
    context = span.get_span_context()
    assert context is not None
    return {
        "trace_id": f"{context.trace_id:032x}",
        "span_id": f"{context.span_id:016x}",
        "parent_span_id": f"{span.parent.span_id:016x}" if span.parent else None,
        "name": span.name,
        "kind": span.kind.name,
        "scope": span.instrumentation_scope.name if span.instrumentation_scope else "",
        "start_ns": span.start_time,
        "end_ns": span.end_time,
        "status": span.status.status_code.name,
        "attributes": {k: _plain(v) for k, v in (span.attributes or {}).items()},
        "events": [
            {
                "name": e.name,
                "time_ns": e.timestamp,
                "attributes": {k: _plain(v) for k, v in (e.attributes or {}).items()},
            }
            for e in span.events
        ],
    }


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value
