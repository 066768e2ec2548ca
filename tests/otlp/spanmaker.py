"""Spans shaped like what the real instrumentations emit (MEASURED.md: What instrumentations
emit), for the mapping's unit tests: the OpenTelemetry contrib ``openai-v2`` (GenAI conventions),
OpenInference's ``openinference-instrumentation-openai`` and OpenLLMetry's
``opentelemetry-instrumentation-openai``, agent and tool spans, and an httpx client span."""

from __future__ import annotations

import itertools
from typing import Any

from producer.otlp.spans import KIND_CLIENT, KIND_INTERNAL, STATUS_UNSET, Span, SpanEvent

TRACE = "0af7651916cd43dd8448eb211c80319c"
SECOND = 1_000_000_000
#: 2026-12-06T12:00:00Z in unix nanoseconds.
T0 = 1_796_558_400 * SECOND
RESOURCE: dict[str, Any] = {"service.name": "agent"}

_ids = itertools.count(1)


def span_id() -> str:
    return f"{next(_ids):016x}"


def span(
    name: str,
    attributes: dict[str, Any],
    *,
    trace: str = TRACE,
    sid: str | None = None,
    parent: str | None = None,
    kind: int = KIND_INTERNAL,
    start: int = T0,
    end: int | None = None,
    resource: dict[str, Any] | None = None,
    status: int = STATUS_UNSET,
    message: str = "",
    events: tuple[SpanEvent, ...] = (),
    dropped_events: int = 0,
) -> Span:
    return Span(
        trace_id=trace,
        span_id=sid or span_id(),
        parent_span_id=parent,
        name=name,
        kind=kind,
        start_ns=start,
        end_ns=start + SECOND if end is None else end,
        attributes=attributes,
        resource=RESOURCE if resource is None else resource,
        status_code=status,
        status_message=message,
        events=events,
        dropped_events_count=dropped_events,
    )


def openai_v2_chat(model: str = "gpt-4o", prompt: int = 1200, completion: int = 300, **kw: Any) -> Span:
    """``opentelemetry-instrumentation-openai-v2``: a CLIENT span ``chat <model>``."""
    extra = kw.pop("attributes", {})
    attributes = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": model,
        "gen_ai.response.model": f"{model}-2024-08-06",
        "gen_ai.response.id": "chatcmpl-1",
        "gen_ai.response.finish_reasons": ["stop"],
        "gen_ai.usage.input_tokens": prompt,
        "gen_ai.usage.output_tokens": completion,
        "server.address": "api.openai.com",
        "server.port": 443,
        **extra,
    }
    return span(f"chat {model}", attributes, kind=KIND_CLIENT, **kw)


def openinference_llm(model: str = "gpt-4o-mini", **kw: Any) -> Span:
    """``openinference-instrumentation-openai``: an INTERNAL span ``ChatCompletion``, LLM kind."""
    extra = kw.pop("attributes", {})
    attributes = {
        "openinference.span.kind": "LLM",
        "llm.model_name": model,
        "llm.provider": "openai",
        "llm.system": "openai",
        "llm.invocation_parameters": '{"model": "gpt-4o-mini"}',
        "llm.token_count.prompt": 2000,
        "llm.token_count.completion": 500,
        "llm.token_count.total": 2500,
        "llm.token_count.prompt_details.cache_read": 1024,
        "llm.token_count.completion_details.reasoning": 128,
        **extra,
    }
    return span("ChatCompletion", attributes, **kw)


def openllmetry_chat(model: str = "gpt-4o", **kw: Any) -> Span:
    """OpenLLMetry's ``opentelemetry-instrumentation-openai``: a CLIENT span ``openai.chat``."""
    extra = kw.pop("attributes", {})
    attributes = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": model,
        "gen_ai.response.model": model,
        "gen_ai.is_streaming": False,
        "gen_ai.usage.input_tokens": 900,
        "gen_ai.usage.output_tokens": 400,
        "gen_ai.usage.total_tokens": 1300,
        "gen_ai.usage.cache_read.input_tokens": 0,
        "gen_ai.usage.reasoning_tokens": 256,
        **extra,
    }
    return span("openai.chat", attributes, kind=KIND_CLIENT, **kw)


def agent(name: str = "planner", **kw: Any) -> Span:
    extra = kw.pop("attributes", {})
    attributes = {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": name, **extra}
    return span(f"invoke_agent {name}", attributes, **kw)


def tool(name: str = "read_file", call_id: str | None = "call_1", **kw: Any) -> Span:
    extra = kw.pop("attributes", {})
    attributes: dict[str, Any] = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": name, **extra}
    if call_id is not None:
        attributes["gen_ai.tool.call.id"] = call_id
    return span(f"execute_tool {name}", attributes, **kw)


def openinference_tool(name: str = "search", **kw: Any) -> Span:
    extra = kw.pop("attributes", {})
    return span(name, {"openinference.span.kind": "TOOL", "tool.name": name, **extra}, **kw)


def http_client(url: str = "https://api.openai.com/v1/chat/completions", code: int = 200, **kw: Any) -> Span:
    """``opentelemetry-instrumentation-httpx`` with the stable HTTP conventions."""
    extra = kw.pop("attributes", {})
    attributes = {
        "http.request.method": "POST",
        "url.full": url,
        "server.address": "api.openai.com",
        "http.response.status_code": code,
        **extra,
    }
    return span("POST", attributes, kind=KIND_CLIENT, **kw)
