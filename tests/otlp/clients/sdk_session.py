"""A GenAI agent instrumented by hand with the OpenTelemetry Python SDK, as the GenAI semantic
conventions describe it: a conversation (``gen_ai.conversation.id``, ``user.id``) of two chat rounds,
the first making its HTTP request to the model API (an HTTP client span under the chat span) and
running the tool it asked for (an ``execute_tool`` span under it too); then a second trace with no
conversation id (the trace is the session; ``enduser.id``), one round that failed. Exported with
the proto or the JSON exporter.

    .venv-otel/bin/python sdk_session.py --exporter proto --conversation ID --user ID [--resend]
"""

from __future__ import annotations

import argparse
import time

from common import Client
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode


def chat(tracer: trace.Tracer, model: str, usage: dict[str, int], **extra: object) -> trace.Span:
    span = tracer.start_span(f"chat {model}", kind=SpanKind.CLIENT)
    span.set_attributes(
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": model,
            "gen_ai.response.model": f"{model}-2024-08-06",
            "gen_ai.usage.input_tokens": usage["input"],
            "gen_ai.usage.output_tokens": usage["output"],
            "gen_ai.usage.cache_read.input_tokens": usage["cache_read"],
            "gen_ai.usage.cache_creation.input_tokens": usage["cache_write"],
            "gen_ai.usage.reasoning.output_tokens": usage["reasoning"],
            "gen_ai.response.time_to_first_chunk": 0.25,
            **extra,  # type: ignore[dict-item]
        }
    )
    return span


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--exporter", required=True, choices=["proto", "json"])
    parser.add_argument("--conversation", required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--resend", action="store_true", help="export every span a second time")
    args = parser.parse_args()
    client = Client(args.exporter, "sdk-agent")
    tracer = trace.get_tracer("sdk-agent")
    session = {"gen_ai.conversation.id": args.conversation, "user.id": args.user}

    agent = tracer.start_span(
        "invoke_agent helper", attributes={"gen_ai.operation.name": "invoke_agent", **session}
    )
    with trace.use_span(agent, end_on_exit=True):
        usage = {"input": 1_200, "output": 300, "cache_read": 1_024, "cache_write": 64, "reasoning": 120}
        first = chat(tracer, "gpt-4o", usage, **session)
        with trace.use_span(first, end_on_exit=True):
            with tracer.start_as_current_span("POST", kind=SpanKind.CLIENT) as http:
                http.set_attributes(
                    {
                        "http.request.method": "POST",
                        "url.full": "https://api.openai.com/v1/chat/completions",
                        "server.address": "api.openai.com",
                        "http.response.status_code": 200,
                    }
                )
            time.sleep(0.01)
            # the tool the answer asked for, run under the round (tied to it by its parent)
            tool = tracer.start_span(
                "execute_tool read_file",
                attributes={
                    "gen_ai.operation.name": "execute_tool",
                    "gen_ai.tool.name": "read_file",
                    "gen_ai.tool.call.id": "call_read_1",
                    **session,
                },
            )
            tool.end()
        usage = {"input": 1_800, "output": 90, "cache_read": 1_536, "cache_write": 0, "reasoning": 0}
        chat(tracer, "gpt-4o-mini", usage, **session).end()

    with tracer.start_as_current_span("agent step", attributes={"enduser.id": args.user}):
        usage = {"input": 700, "output": 0, "cache_read": 0, "cache_write": 0, "reasoning": 0}
        failed = chat(tracer, "gpt-4o", usage, **{"enduser.id": args.user, "error.type": "timeout"})
        failed.set_status(Status(StatusCode.ERROR, "upstream timed out"))
        failed.end()

    client.finish(resend=args.resend)


if __name__ == "__main__":
    main()
