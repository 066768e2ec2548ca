"""An agent that calls a model API with the official ``openai`` client, instrumented by one of the
three instrumentations people run, exported over OTLP/HTTP: a session of chat completions (one
asking for a tool, the tool run, the answer after it), a streamed completion (its usage in the last
chunk) and a Responses API call, against the OpenAI-compatible server at ``--base-url``.

Each instrumentation with the session and user it knows how to carry: OpenInference's
``using_attributes`` (``session.id``, ``user.id``); OpenLLMetry's association properties (set on
every span as traceloop-sdk's span processor sets them); the contrib ``openai-v2`` has none, so its
calls share one trace (the trace is the session). The tool run is the agent's own span, in each
instrumentation's convention: ``execute_tool`` for the GenAI ones, a TOOL span for OpenInference.

    .venv-otel/bin/python instrumented.py --instrumentation openinference --base-url URL \
        --session ID --user ID [--exporter proto|json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
from collections.abc import Iterator
from typing import Any

import openai
from common import Client
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "read_file",
            "description": "Read a file",
            "parameters": {
                "type": "object",
                "properties": {"path": {"type": "string"}},
                "required": ["path"],
            },
        },
    }
]


class AssociationProperties(SpanProcessor):
    """What traceloop-sdk does for ``Traceloop.set_association_properties``: every span started
    gets ``traceloop.association.properties.<key>``."""

    def __init__(self, properties: dict[str, str]) -> None:
        self.properties = properties

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        for key, value in self.properties.items():
            span.set_attribute(f"traceloop.association.properties.{key}", value)

    def on_end(self, span: ReadableSpan) -> None:
        pass


def instrument(name: str, client: Client, session: str, user: str) -> contextlib.AbstractContextManager[Any]:
    """Instruments the ``openai`` client; returns the context the agent's work runs in."""
    if name == "openai-v2":
        from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

        OpenAIInstrumentor().instrument(tracer_provider=client.provider)
        return trace.get_tracer("agent").start_as_current_span("agent run")
    if name == "openinference":
        from openinference.instrumentation import using_attributes
        from openinference.instrumentation.openai import OpenAIInstrumentor as OpenInference

        OpenInference().instrument(tracer_provider=client.provider)
        return _both(
            using_attributes(session_id=session, user_id=user),
            trace.get_tracer("agent").start_as_current_span(
                "agent run",
                attributes={"openinference.span.kind": "AGENT", "session.id": session, "user.id": user},
            ),
        )
    if name == "openllmetry":
        from opentelemetry.instrumentation.openai import OpenAIInstrumentor as OpenLLMetry

        client.provider.add_span_processor(AssociationProperties({"session_id": session, "user_id": user}))
        OpenLLMetry().instrument(tracer_provider=client.provider)
        return trace.get_tracer("agent").start_as_current_span(
            "agent run", attributes={"traceloop.span.kind": "workflow"}
        )
    raise SystemExit(f"--instrumentation: {name!r}: openai-v2, openinference or openllmetry")


@contextlib.contextmanager
def _both(
    outer: contextlib.AbstractContextManager[Any], inner: contextlib.AbstractContextManager[Any]
) -> Iterator[None]:
    with outer, inner:
        yield


@contextlib.contextmanager
def tool_span(name: str, instrumentation: str, call_id: str) -> Iterator[None]:
    tracer = trace.get_tracer("agent")
    if instrumentation == "openinference":
        from openinference.instrumentation import get_attributes_from_context

        # session.id and user.id from using_attributes, as OpenInference's own instrumentations add them
        attributes = {"openinference.span.kind": "TOOL", "tool.name": name, "tool_call.id": call_id}
        attributes.update(get_attributes_from_context())
    else:
        attributes = {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": name,
            "gen_ai.tool.call.id": call_id,
        }
    with tracer.start_as_current_span(f"execute_tool {name}", attributes=attributes):
        yield


def work(api: openai.OpenAI, instrumentation: str) -> None:
    question = [{"role": "user", "content": "What does the README say?"}]
    api.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hello"}])
    asked = api.chat.completions.create(model="gpt-4o", messages=question, tools=TOOLS)
    call = asked.choices[0].message.tool_calls[0]
    with tool_span(call.function.name, instrumentation, call.id):
        result = json.dumps({"text": "a pipeline"})
    api.chat.completions.create(
        model="gpt-4o",
        messages=[
            *question,
            asked.choices[0].message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": call.id, "content": result},
        ],
        tools=TOOLS,
    )
    stream = api.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "stream it"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    for _ in stream:
        pass
    api.responses.create(model="gpt-4o-mini", input="and once through the Responses API")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--instrumentation", required=True)
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--session", required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--exporter", default="proto", choices=["proto", "json"])
    args = parser.parse_args()
    client = Client(args.exporter, f"agent-{args.instrumentation}")
    scope = instrument(args.instrumentation, client, args.session, args.user)
    api = openai.OpenAI(base_url=args.base_url, api_key="sk-local", max_retries=0)
    with scope:
        work(api, args.instrumentation)
    client.finish()


if __name__ == "__main__":
    main()
