"""Spans -> contract events (producer/otlp/mapping.py): each row of README's "How spans map", on
spans shaped like the real instrumentations'; then, for any request, determinism, the same ids
however the spans are split across requests, events that survive the wire, parts within wholes."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contract import codec
from contract.routing import routing_id
from producer.otlp.ids import NAMESPACE, entity_id, event_id
from producer.otlp.mapping import Mapped, map_spans
from producer.otlp.spans import KIND_CLIENT, STATUS_ERROR, Span, SpanEvent
from tests.otlp.spanmaker import (
    SECOND,
    T0,
    TRACE,
    agent,
    http_client,
    openai_v2_chat,
    openinference_llm,
    openinference_tool,
    openllmetry_chat,
    span,
    tool,
)
from worker.engine.merge import plan


def of(mapped: Mapped, kind: str) -> list[Any]:
    assert mapped.rejected == []
    return [e for e in mapped.events if e.type == kind]


def one(mapped: Mapped, kind: str) -> Any:
    found = of(mapped, kind)
    assert len(found) == 1, [e.type for e in mapped.events]
    return found[0]


def usage_of(s: Span) -> dict[str, Any]:
    return one(map_spans([s]), "round.completed").usage.model_dump()


def refusal(s: Span, *others: Span) -> str:
    mapped = map_spans([s, *others])
    assert len(mapped.rejected) == 1, mapped.rejected
    rejection = mapped.rejected[0]
    assert (rejection.span_id, rejection.trace_id, rejection.name) == (s.span_id, s.trace_id, s.name)
    assert not [e for e in mapped.events if getattr(e, "round_id", None) == entity_id(TRACE, s.span_id)]
    return str(rejection)


# --- rounds ------------------------------------------------------------------------------------


def test_a_genai_chat_span_is_a_round_started_at_its_start_and_completed_at_its_end() -> None:
    chat = openai_v2_chat(start=T0, end=T0 + 3 * SECOND)
    mapped = map_spans([chat])
    started, completed = one(mapped, "round.started"), one(mapped, "round.completed")
    assert started.round_id == completed.round_id == f"{TRACE}-{chat.span_id}"
    assert (started.model, started.provider) == ("gpt-4o-2024-08-06", "openai")
    assert started.occurred_at.timestamp() * 1e9 == T0
    assert completed.occurred_at.timestamp() * 1e9 == T0 + 3 * SECOND
    assert (completed.status, completed.error, completed.time_to_first_token_ms) == ("success", None, None)
    assert completed.usage.model_dump() == {
        "prompt_tokens": 1200,
        "completion_tokens": 300,
        "total_tokens": 1500,
        "cache_read_tokens": None,
        "cache_write_tokens": None,
        "reasoning_tokens": None,
    }


@pytest.mark.parametrize("operation", ["chat", "text_completion", "generate_content"])
def test_each_model_call_operation_is_a_round(operation: str) -> None:
    chat = openai_v2_chat(attributes={"gen_ai.operation.name": operation})
    assert one(map_spans([chat]), "round.started").round_id == entity_id(TRACE, chat.span_id)


def test_openinference_llm_spans_and_openllmetry_legacy_chat_spans_are_rounds() -> None:
    legacy = span("openai.chat", {"llm.request.type": "chat", "gen_ai.request.model": "gpt-4"})
    completion = span(
        "openai.completion", {"llm.request.type": "completion", "gen_ai.request.model": "davinci"}
    )
    mapped = map_spans([openinference_llm(), legacy, completion])
    assert [e.model for e in of(mapped, "round.started")] == ["gpt-4o-mini", "gpt-4", "davinci"]


@pytest.mark.parametrize(
    ("attributes", "model"),
    [
        (
            {"gen_ai.response.model": "gpt-4o-2024-08-06", "gen_ai.request.model": "gpt-4o"},
            "gpt-4o-2024-08-06",
        ),
        ({"gen_ai.request.model": "gpt-4o", "llm.model_name": "x"}, "gpt-4o"),
        ({"llm.model_name": "claude-sonnet-4-5"}, "claude-sonnet-4-5"),
        ({"llm.response.model_name": "o3-2025", "llm.model_name": "o3"}, "o3-2025"),  # OpenInference
        ({"llm.request.model_name": "o3"}, "o3"),
    ],
)
def test_the_model_is_the_response_model_else_the_request_model_else_llm_model_name(
    attributes: dict[str, Any], model: str
) -> None:
    chat = span("chat", {"gen_ai.operation.name": "chat", **attributes})
    assert one(map_spans([chat]), "round.started").model == model


def test_a_round_without_a_model_is_rejected_naming_the_span_and_the_attribute() -> None:
    chat = span("chat", {"gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": 5})
    message = refusal(chat)
    assert message.startswith(
        f"span {chat.span_id} ('chat', trace {TRACE}): gen_ai.request.model: is required"
    )


@pytest.mark.parametrize(
    ("attributes", "provider"),
    [
        ({"gen_ai.provider.name": "aws.bedrock", "gen_ai.system": "openai"}, "aws.bedrock"),
        ({"gen_ai.system": "az.ai.openai"}, "azure.ai.openai"),  # deprecated gen_ai.system
        ({"gen_ai.system": "Anthropic"}, "anthropic"),
        ({"llm.provider": "mistralai"}, "mistral_ai"),  # OpenInference
        ({"llm.provider": "google"}, "gcp.gen_ai"),
        ({"llm.provider": "azure"}, "azure.ai.openai"),
        ({"gen_ai.system": "vertex_ai"}, "gcp.vertex_ai"),
        ({"gen_ai.provider.name": "xai"}, "x_ai"),
        ({"gen_ai.system": "az.ai.inference"}, "azure.ai.inference"),
        ({"llm.provider": "aws"}, "aws.bedrock"),
        ({"gen_ai.system": "bedrock"}, "aws.bedrock"),
        ({"llm.system": "vertexai"}, "gcp.vertex_ai"),
        ({"gen_ai.system": "gemini"}, "gcp.gemini"),
        ({"gen_ai.system": "mistral"}, "mistral_ai"),
        ({"gen_ai.system": "watsonx"}, "ibm.watsonx.ai"),
        ({"gen_ai.provider.name": "Ollama"}, "ollama"),  # unknown names are kept, lowercased
        ({}, None),
    ],
)
def test_the_provider_is_read_from_each_convention_and_its_aliases_normalised(
    attributes: dict[str, Any], provider: str | None
) -> None:
    chat = span("chat", {"gen_ai.operation.name": "chat", "gen_ai.request.model": "m", **attributes})
    assert one(map_spans([chat]), "round.started").provider == provider


@pytest.mark.parametrize(
    ("attribute", "slot"),
    [
        ("gen_ai.usage.input_tokens", "prompt_tokens"),
        ("gen_ai.usage.prompt_tokens", "prompt_tokens"),  # deprecated
        ("llm.token_count.prompt", "prompt_tokens"),  # OpenInference
        ("gen_ai.usage.output_tokens", "completion_tokens"),
        ("gen_ai.usage.completion_tokens", "completion_tokens"),  # deprecated
        ("llm.token_count.completion", "completion_tokens"),
        ("gen_ai.usage.cache_read.input_tokens", "cache_read_tokens"),
        ("llm.token_count.prompt_details.cache_read", "cache_read_tokens"),
        ("gen_ai.usage.cache_read_input_tokens", "cache_read_tokens"),  # OpenLLMetry, older
        ("gen_ai.usage.cache_creation.input_tokens", "cache_write_tokens"),
        ("llm.token_count.prompt_details.cache_write", "cache_write_tokens"),
        ("gen_ai.usage.cache_creation_input_tokens", "cache_write_tokens"),
        ("gen_ai.usage.reasoning.output_tokens", "reasoning_tokens"),
        ("gen_ai.usage.reasoning_tokens", "reasoning_tokens"),  # OpenLLMetry
        ("llm.token_count.completion_details.reasoning", "reasoning_tokens"),
    ],
)
def test_each_token_attribute_fills_its_slot(attribute: str, slot: str) -> None:
    # The wholes by their current names, but not the one this attribute stands for.
    wholes = {
        "prompt_tokens": {"gen_ai.usage.input_tokens": 5000},
        "completion_tokens": {"gen_ai.usage.output_tokens": 3000},
    }
    given = {k: v for whole, names in wholes.items() if whole != slot for k, v in names.items()}
    chat = span(
        "chat", {"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o", **given, attribute: 777}
    )
    usage = usage_of(chat)
    assert usage[slot] == 777
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_the_three_instrumentations_usage_reads_as_the_contract_means_it() -> None:
    assert usage_of(openinference_llm()) == {
        "prompt_tokens": 2000,
        "completion_tokens": 500,
        "total_tokens": 2500,
        "cache_read_tokens": 1024,
        "cache_write_tokens": None,
        "reasoning_tokens": 128,
    }
    assert usage_of(openllmetry_chat()) == {
        "prompt_tokens": 900,
        "completion_tokens": 400,
        "total_tokens": 1300,
        "cache_read_tokens": 0,
        "cache_write_tokens": None,
        "reasoning_tokens": 256,
    }


def _anthropic(**counts: int) -> Span:
    attributes = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "anthropic"}
    names = {
        "input": "gen_ai.usage.input_tokens",
        "output": "gen_ai.usage.output_tokens",
        "read": "gen_ai.usage.cache_read.input_tokens",
        "write": "gen_ai.usage.cache_creation.input_tokens",
    }
    return span(
        "chat",
        {**attributes, "gen_ai.request.model": "claude-sonnet-4-5"}
        | {names[k]: v for k, v in counts.items()},
    )


def test_an_anthropic_input_count_that_leaves_the_cache_out_gets_it_added_in() -> None:
    # Anthropic's own input_tokens (50) excludes its cache: copied as it is, it is under its parts.
    usage = usage_of(_anthropic(input=50, output=10, read=1000, write=200))
    assert (usage["prompt_tokens"], usage["cache_read_tokens"], usage["cache_write_tokens"]) == (
        1250,
        1000,
        200,
    )
    assert usage["total_tokens"] == 1260
    # OpenInference's and OpenLLMetry's Anthropic instrumentations add it in already: kept.
    assert usage_of(_anthropic(input=1250, output=10, read=1000, write=200))["prompt_tokens"] == 1250
    # Claude served by Bedrock counts the same way.
    bedrock = span(
        "chat",
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "aws.bedrock",
            "gen_ai.request.model": "anthropic.claude-3-5-sonnet-20240620-v1:0",
            "gen_ai.usage.input_tokens": 3,
            "gen_ai.usage.cache_read.input_tokens": 100,
        },
    )
    assert usage_of(bedrock)["prompt_tokens"] == 103


def test_a_gemini_output_count_that_leaves_reasoning_out_gets_it_added_in() -> None:
    gemini = span(
        "generate_content gemini-2.5-pro",
        {
            "gen_ai.operation.name": "generate_content",
            "gen_ai.provider.name": "gcp.gemini",
            "gen_ai.request.model": "gemini-2.5-pro",
            "gen_ai.usage.input_tokens": 100,
            "gen_ai.usage.output_tokens": 40,
            "gen_ai.usage.reasoning.output_tokens": 400,
        },
    )
    usage = usage_of(gemini)
    assert (usage["completion_tokens"], usage["reasoning_tokens"], usage["total_tokens"]) == (440, 400, 540)


def test_a_part_larger_than_its_whole_from_any_other_provider_is_rejected_naming_the_part() -> None:
    cached = openai_v2_chat(prompt=100, attributes={"gen_ai.usage.cache_read.input_tokens": 300})
    assert (
        "gen_ai.usage.cache_read.input_tokens: gen_ai.usage.cache_read.input_tokens (300) is larger than "
        in (refusal(cached))
    )
    both = openai_v2_chat(
        prompt=100,
        attributes={
            "gen_ai.usage.cache_read.input_tokens": 60,
            "gen_ai.usage.cache_creation.input_tokens": 60,
        },
    )
    assert "gen_ai.usage.cache_creation.input_tokens: " in refusal(both)
    thinking = openinference_llm(attributes={"llm.token_count.completion_details.reasoning": 501})
    assert (
        "llm.token_count.completion_details.reasoning (501) is larger than llm.token_count.completion (500)"
        in (refusal(thinking))
    )


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (-1, "must be from 0 to"),
        (3.5, "must be a whole number of tokens"),
        ("12", "must be a count of tokens, not str"),
        (True, "must be a count of tokens, not bool"),
    ],
)
def test_a_token_count_that_is_not_one_is_rejected_naming_the_attribute(value: Any, reason: str) -> None:
    chat = openai_v2_chat(attributes={"gen_ai.usage.output_tokens": value})
    assert f"gen_ai.usage.output_tokens: {reason}" in refusal(chat)


def test_whole_numbers_sent_as_doubles_count_and_missing_counts_are_zero() -> None:
    js = openai_v2_chat(attributes={"gen_ai.usage.input_tokens": 12.0})  # JavaScript SDKs
    assert usage_of(js)["prompt_tokens"] == 12
    bare = span("chat", {"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o"})
    assert usage_of(bare) == {
        "prompt_tokens": 0,
        "completion_tokens": 0,
        "total_tokens": 0,
        "cache_read_tokens": None,
        "cache_write_tokens": None,
        "reasoning_tokens": None,
    }


def _ttft(s: Span) -> int | None:
    return one(map_spans([s]), "round.completed").time_to_first_token_ms  # type: ignore[no-any-return]


def test_time_to_first_token_from_the_attribute_or_the_first_token_events() -> None:
    assert _ttft(openai_v2_chat(attributes={"gen_ai.response.time_to_first_chunk": 0.2505})) == 250
    first = SpanEvent("First Token Stream Event", T0 + 120_000_000)  # OpenInference
    assert _ttft(openinference_llm(start=T0, events=(first,))) == 120
    chunks = tuple(SpanEvent("gen_ai.content.completion.chunk", T0 + ms * 1_000_000) for ms in (80, 90, 95))
    assert _ttft(openllmetry_chat(start=T0, events=chunks)) == 80  # OpenLLMetry: one event per chunk
    # The Python SDK drops the oldest events past its limit: the first chunk may be gone.
    assert _ttft(openllmetry_chat(start=T0, events=chunks, dropped_events=50)) is None
    assert _ttft(openai_v2_chat()) is None


def test_a_negative_time_to_first_chunk_is_rejected() -> None:
    chat = openai_v2_chat(attributes={"gen_ai.response.time_to_first_chunk": -1.0})
    assert "gen_ai.response.time_to_first_chunk: must not be negative" in refusal(chat)


def test_an_error_span_is_an_error_round_with_its_error_text() -> None:
    status = openai_v2_chat(status=STATUS_ERROR, message="Error code: 429 - rate limited")
    typed = openai_v2_chat(attributes={"error.type": "RateLimitError"})
    both = openai_v2_chat(attributes={"error.type": "RateLimitError"}, status=STATUS_ERROR, message="429")
    raised = openai_v2_chat(
        status=STATUS_ERROR,
        events=(SpanEvent("exception", T0, {"exception.type": "TimeoutError", "exception.message": "read"}),),
    )
    cancelled = openai_v2_chat(attributes={"error.type": "asyncio.CancelledError"})
    mapped = map_spans([status, typed, both, raised, cancelled])
    assert [(e.status, e.error) for e in of(mapped, "round.completed")] == [
        ("error", "Error code: 429 - rate limited"),
        ("error", "RateLimitError"),
        ("error", "RateLimitError: 429"),
        ("error", "TimeoutError: read"),
        ("cancelled", "asyncio.CancelledError"),
    ]


# --- tool calls --------------------------------------------------------------------------------


def _round_of(mapped: Mapped) -> str:
    started = one(mapped, "tool.started")
    assert one(mapped, "tool.completed").round_id == started.round_id
    return started.round_id  # type: ignore[no-any-return]


def test_an_execute_tool_span_is_a_tool_call_of_its_parent_round() -> None:
    chat = openai_v2_chat()
    call = tool("read_file", parent=chat.span_id, start=T0 + SECOND // 2)
    mapped = map_spans([chat, call])
    started, completed = one(mapped, "tool.started"), one(mapped, "tool.completed")
    assert (started.tool_call_id, started.tool_name) == (entity_id(TRACE, call.span_id), "read_file")
    assert started.round_id == entity_id(TRACE, chat.span_id)
    assert (completed.success, completed.error) == (True, None)


def test_a_tool_call_belongs_to_its_nearest_round_ancestor() -> None:
    chat = openai_v2_chat()
    step = span("step", {"openinference.span.kind": "CHAIN"}, parent=chat.span_id)
    call = tool(parent=step.span_id)
    assert _round_of(map_spans([call, step, chat])) == entity_id(TRACE, chat.span_id)


def test_else_to_the_round_whose_answer_carried_its_call_id() -> None:
    root = agent()
    asked = openinference_llm(
        parent=root.span_id,
        start=T0 + 5 * SECOND,  # ends after the tool started: only its call id ties them
        attributes={"llm.output_messages.0.message.tool_calls.0.tool_call.id": "call_9"},
    )
    other = openinference_llm(parent=root.span_id, start=T0, end=T0 + SECOND)
    call = openinference_tool(
        "search", parent=root.span_id, start=T0 + 2 * SECOND, attributes={"tool.id": "call_9"}
    )
    assert _round_of(map_spans([root, other, asked, call])) == entity_id(TRACE, asked.span_id)
    captured = openai_v2_chat(
        parent=root.span_id,
        start=T0 + 5 * SECOND,
        attributes={
            "gen_ai.output.messages": '[{"role": "assistant", "parts": '
            '[{"type": "tool_call", "id": "call_7", "name": "read_file", "arguments": {}}]}]'
        },
    )
    call = tool(call_id="call_7", parent=root.span_id, start=T0 + 2 * SECOND)
    assert _round_of(map_spans([root, other, captured, call])) == entity_id(TRACE, captured.span_id)


def test_else_to_the_latest_round_beside_it_that_ended_before_it_started() -> None:
    root = agent()
    first = openai_v2_chat(parent=root.span_id, start=T0, end=T0 + SECOND)
    second = openai_v2_chat(parent=root.span_id, start=T0 + SECOND, end=T0 + 2 * SECOND)
    later = openai_v2_chat(parent=root.span_id, start=T0 + 4 * SECOND, end=T0 + 5 * SECOND)
    call = tool(call_id=None, parent=root.span_id, start=T0 + 3 * SECOND)
    assert _round_of(map_spans([later, call, first, second, root])) == entity_id(TRACE, second.span_id)


def test_else_to_a_round_id_made_from_its_parent_span() -> None:
    # The parent (a round) went in another request: the id is the one that round gets there.
    chat = openai_v2_chat()
    call = tool(parent=chat.span_id)
    assert _round_of(map_spans([call])) == entity_id(TRACE, chat.span_id)
    assert one(map_spans([chat]), "round.started").round_id == entity_id(TRACE, chat.span_id)
    alone = tool(parent=None)
    assert _round_of(map_spans([alone])) == entity_id(TRACE, alone.span_id)


def test_openinference_tool_spans_and_tool_names_from_each_source() -> None:
    chat = openinference_llm()
    named = openinference_tool("search", parent=chat.span_id)
    unnamed = span("lookup", {"openinference.span.kind": "TOOL"}, parent=chat.span_id)
    by_span_name = span("execute_tool grep", {"gen_ai.operation.name": "execute_tool"}, parent=chat.span_id)
    mapped = map_spans([chat, named, unnamed, by_span_name])
    assert [e.tool_name for e in of(mapped, "tool.started")] == ["search", "lookup", "grep"]
    nameless = span("execute_tool", {"gen_ai.operation.name": "execute_tool"}, parent=chat.span_id)
    assert "gen_ai.tool.name: is required" in refusal(nameless, chat)


def test_a_failed_tool_call_is_unsuccessful_with_its_error() -> None:
    call = tool(attributes={"error.type": "FileNotFoundError"}, status=STATUS_ERROR, message="no such file")
    completed = one(map_spans([call]), "tool.completed")
    assert (completed.success, completed.error) == (False, "FileNotFoundError: no such file")


# --- sessions ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "attribute",
    [
        "gen_ai.conversation.id",
        "session.id",  # OpenInference
        "traceloop.association.properties.session_id",  # OpenLLMetry
        "traceloop.association.properties.conversation_id",
        "traceloop.association.properties.thread_id",
        "langfuse.session.id",
    ],
)
def test_each_session_attribute_names_the_session(attribute: str) -> None:
    mapped = map_spans([openai_v2_chat(attributes={attribute: "conv-1"})])
    assert one(mapped, "round.started").session_id == one(mapped, "session.started").session_id == "conv-1"


def test_the_session_is_inherited_from_an_ancestor_else_the_resource_else_the_trace() -> None:
    root = agent(attributes={"gen_ai.conversation.id": "conv-1"})
    below = openai_v2_chat(parent=root.span_id)
    assert one(map_spans([below, root]), "round.started").session_id == "conv-1"
    resource = {"service.name": "agent", "session.id": "from-resource"}
    assert one(map_spans([openai_v2_chat(resource=resource)]), "round.started").session_id == "from-resource"
    assert one(map_spans([openai_v2_chat()]), "round.started").session_id == TRACE
    # The span's own attribute wins over its ancestor's.
    own = openai_v2_chat(parent=root.span_id, attributes={"session.id": "own"})
    assert one(map_spans([root, own]), "round.started").session_id == "own"


@pytest.mark.parametrize(
    "attribute",
    ["user.id", "enduser.id", "traceloop.association.properties.user_id", "langfuse.user.id", "gen_ai.user"],
)
def test_each_user_attribute_is_the_sessions_user(attribute: str) -> None:
    assert (
        one(map_spans([openai_v2_chat(attributes={attribute: "user-42"})]), "session.started").user_id
        == "user-42"
    )


def test_the_user_from_an_ancestor_or_the_resource() -> None:
    root = agent(attributes={"user.id": "u-root"})
    assert one(map_spans([root, openai_v2_chat(parent=root.span_id)]), "session.started").user_id == "u-root"
    chat = openai_v2_chat(resource={"enduser.id": "u-res"})
    assert one(map_spans([chat]), "session.started").user_id == "u-res"
    assert one(map_spans([openai_v2_chat()]), "session.started").user_id is None


def test_one_session_started_per_session_at_its_earliest_span_with_its_earliest_rounds_model() -> None:
    conv = {"gen_ai.conversation.id": "conv-1"}
    root = agent(attributes={**conv, "gen_ai.request.model": "agent-model"}, start=T0, end=T0 + 9 * SECOND)
    late = openai_v2_chat("gpt-4o-mini", parent=root.span_id, start=T0 + 5 * SECOND, attributes=conv)
    early = openinference_llm(
        "o3", parent=root.span_id, start=T0 + 2 * SECOND, attributes={"session.id": "conv-1"}
    )
    started = one(map_spans([late, root, early]), "session.started")
    assert (started.session_id, started.model) == ("conv-1", "o3")
    assert started.occurred_at.timestamp() * 1e9 == T0
    assert started.event_id == event_id("session/conv-1/session.started")
    # No round in the request: the agent span's model; no model at all: no session.started.
    assert one(map_spans([root]), "session.started").model == "agent-model"
    assert of(map_spans([tool(attributes=conv)]), "session.started") == []


def test_a_session_sent_in_two_requests_converges_in_the_worker_whatever_their_order() -> None:
    conv = {"gen_ai.conversation.id": "conv-1"}
    first = map_spans([openai_v2_chat("gpt-4o", start=T0, attributes=conv)]).events
    second = map_spans([openai_v2_chat("o3", start=T0 + 60 * SECOND, attributes=conv)]).events
    starts = [e for e in first + second if e.type == "session.started"]
    assert len({e.event_id for e in starts}) == 1  # one id: the session's, not a span's
    rows = [plan(first + second).sessions["conv-1"], plan(second + first).sessions["conv-1"]]
    assert rows[0] == rows[1]
    assert rows[0].started_at.timestamp() * 1e9 == T0  # the earliest start
    assert rows[0].model == "o3-2024-08-06"  # the latest start's model


def test_a_traces_own_session_is_completed_by_its_root_span_and_no_other_session_is() -> None:
    root = agent(start=T0, end=T0 + 9 * SECOND)
    chat = openai_v2_chat(parent=root.span_id)
    completed = one(map_spans([root, chat]), "session.completed")
    assert (completed.session_id, completed.status) == (TRACE, "completed")
    assert completed.occurred_at.timestamp() * 1e9 == T0 + 9 * SECOND
    assert of(map_spans([chat]), "session.completed") == []  # not the root
    conv = agent(attributes={"gen_ai.conversation.id": "conv-1"})
    assert of(map_spans([conv]), "session.completed") == []  # a conversation goes on
    failed = openai_v2_chat(status=STATUS_ERROR, message="boom")  # a lone call is its trace
    assert one(map_spans([failed]), "session.completed").status == "error"


def test_a_session_id_the_contract_cannot_hold_is_rejected_naming_the_attribute() -> None:
    chat = openai_v2_chat(attributes={"session.id": "x" * 129})
    assert "session.id: is 129 characters long, over the maximum of 128" in refusal(chat)
    root = agent(attributes={"user.id": "bad\x00id"})
    below = openai_v2_chat(parent=root.span_id)
    mapped = map_spans([below, root])
    assert {r.span_id for r in mapped.rejected} == {below.span_id, root.span_id}
    assert all("user.id: contains a NUL character" in str(r) for r in mapped.rejected)


# --- forwards ----------------------------------------------------------------------------------


def test_an_http_client_span_under_a_round_is_a_forward_of_that_round() -> None:
    chat = openllmetry_chat(
        attributes={"gen_ai.is_streaming": True, "traceloop.association.properties.session_id": "s"}
    )
    call = http_client(
        "https://user:pw@generativelanguage.googleapis.com/v1beta/models/g:streamGenerateContent?key=SECRET",
        parent=chat.span_id,
    )
    mapped = map_spans([chat, call])
    started, completed = one(mapped, "forward.started"), one(mapped, "forward.completed")
    assert started.forward_id == entity_id(TRACE, call.span_id)
    assert (
        started.endpoint == "https://generativelanguage.googleapis.com/v1beta/models/g:streamGenerateContent"
    )
    assert (started.model, started.provider, started.is_stream) == ("gpt-4o", "openai", True)
    assert (started.session_id, started.round_id) == ("s", entity_id(TRACE, chat.span_id))
    assert (completed.status, completed.status_code, completed.usage, completed.error) == (
        "success",
        200,
        None,
        None,
    )


def test_forward_status_code_error_and_timeout() -> None:
    chat = openai_v2_chat()
    limited = http_client(code=429, parent=chat.span_id, status=STATUS_ERROR)
    timeout = span(
        "POST",
        {
            "http.request.method": "POST",
            "url.full": "https://api.openai.com/v1/x",
            "error.type": "httpx.ReadTimeout",
        },
        kind=KIND_CLIENT,
        parent=chat.span_id,
    )
    mapped = map_spans([chat, limited, timeout])
    assert [(e.status, e.status_code) for e in of(mapped, "forward.completed")] == [
        ("error", 429),
        ("timeout", None),
    ]


def test_older_http_conventions_and_a_server_address_without_url() -> None:
    chat = openinference_llm(attributes={"llm.invocation_parameters": '{"model": "gpt-4o", "stream": true}'})
    old = span(
        "POST",
        {
            "http.method": "POST",
            "http.url": "http://localhost:8080/v1/chat/completions",
            "http.status_code": 503,
        },
        kind=KIND_CLIENT,
        parent=chat.span_id,
    )
    bare = span(
        "POST",
        {"http.request.method": "POST", "server.address": "api.anthropic.com", "url.path": "/v1/messages"},
        kind=KIND_CLIENT,
        parent=chat.span_id,
    )
    mapped = map_spans([chat, old, bare])
    assert [(e.endpoint, e.is_stream) for e in of(mapped, "forward.started")] == [
        ("http://localhost:8080/v1/chat/completions", True),
        ("api.anthropic.com/v1/messages", True),
    ]
    assert [e.status_code for e in of(mapped, "forward.completed")] == [503, None]


def test_http_spans_that_are_not_a_genai_spans_requests_are_ignored() -> None:
    chat = openai_v2_chat()
    outer = http_client(parent=chat.span_id)
    inner = http_client(parent=outer.span_id)  # urllib3 under requests: the outer one is the forward
    by_tool = tool(parent=chat.span_id)
    tools_own = http_client("https://api.weather.example/today", parent=by_tool.span_id)
    orphan = http_client(parent="00000000000000ff")  # its parent is not in the request
    plain = http_client()
    mapped = map_spans([chat, outer, inner, by_tool, tools_own, orphan, plain])
    assert [e.forward_id for e in of(mapped, "forward.started")] == [entity_id(TRACE, outer.span_id)]


def test_a_forward_is_streamed_as_its_round_says_and_has_usage_only_from_its_own_attributes() -> None:
    chat = openai_v2_chat(attributes={"gen_ai.request.stream": True})
    plain = http_client(parent=chat.span_id)
    counted = http_client(
        parent=chat.span_id, attributes={"gen_ai.usage.input_tokens": 10, "gen_ai.usage.output_tokens": 2}
    )
    mapped = map_spans([chat, plain, counted])
    assert [e.is_stream for e in of(mapped, "forward.started")] == [True, True]
    usages = [e.usage and e.usage.total_tokens for e in of(mapped, "forward.completed")]
    assert usages == [None, 12]


def test_an_agents_own_http_request_is_a_forward_without_a_round() -> None:
    root = agent(attributes={"gen_ai.request.model": "gpt-4o", "gen_ai.provider.name": "openai"})
    started = one(map_spans([root, http_client(parent=root.span_id)]), "forward.started")
    assert (started.model, started.round_id, started.is_stream) == ("gpt-4o", None, False)


# --- ignored, rejected, ids --------------------------------------------------------------------


def test_spans_that_are_not_genai_are_ignored_not_rejected() -> None:
    spans = [
        span("SELECT", {"db.system": "postgresql"}, kind=KIND_CLIENT),
        span("GET /", {"http.request.method": "GET"}),  # a server span
        span("embeddings", {"gen_ai.operation.name": "embeddings", "gen_ai.request.model": "e"}),
        span("retrieve", {"openinference.span.kind": "RETRIEVER"}),
    ]
    assert map_spans(spans) == Mapped([], [])
    assert map_spans([]) == Mapped([], [])


def test_spans_without_times_are_rejected() -> None:
    assert "start_time_unix_nano: must be a time after 1970, not 0" in refusal(openai_v2_chat(start=0, end=5))
    backwards = openai_v2_chat(start=T0, end=T0 - 1)
    assert "end_time_unix_nano: is before start_time_unix_nano" in refusal(backwards)


def test_a_contract_refusal_names_the_attribute_with_the_contracts_reason() -> None:
    chat = openai_v2_chat(attributes={"gen_ai.response.model": "m" * 300})
    assert "gen_ai.response.model: is 300 characters long, over the maximum of 256" in refusal(chat)


def test_events_the_contract_refuses_are_rejected_with_the_contracts_reason() -> None:
    huge = openai_v2_chat(prompt=2**63 - 1, completion=1)  # each count fits, their total does not
    message = refusal(huge)
    assert ": usage.total_tokens: Input should be less than or equal to 9223372036854775807" in message


def test_event_ids_are_uuid5_of_trace_span_and_type_and_the_same_export_maps_the_same() -> None:
    chat = openai_v2_chat()
    mapped = map_spans([chat])
    started = one(mapped, "round.started")
    assert started.event_id == str(uuid.uuid5(NAMESPACE, f"{TRACE}/{chat.span_id}/round.started"))
    for name in ("", "session/ü/session.started", "x" * 500):
        assert event_id(name) == str(uuid.uuid5(NAMESPACE, name))
    assert map_spans([chat]) == mapped
    assert map_spans([chat, chat]).events == mapped.events  # a span sent twice is mapped once


# --- for any request ---------------------------------------------------------------------------

_KINDS = ("chat", "openinference", "openllmetry", "anthropic", "gemini", "tool", "oi_tool", "http", "db")


@st.composite
def requests(draw: st.DrawFn) -> list[Span]:
    """Agent runs as the instrumentations export them: one trace each, a session attribute on
    every span or on the resource or none (as OpenInference, OpenLLMetry and Langfuse put it on
    every span), any token counts (parts over their wholes too), any times."""
    spans: list[Span] = []
    for t in range(draw(st.integers(1, 4))):
        trace = f"{t:08x}{draw(st.integers(0, 2**96 - 1)):024x}"
        where = draw(st.sampled_from(["span", "resource", "none"]))
        common: dict[str, Any] = {}
        resource: dict[str, Any] = {"service.name": "agent"}
        session = draw(st.sampled_from(["conv-1", "conv-2"]))
        if where == "span":
            common["gen_ai.conversation.id"] = session
            if draw(st.booleans()):
                common["user.id"] = draw(st.sampled_from(["u1", "u2"]))
        elif where == "resource":
            resource = {**resource, "session.id": session, "enduser.id": "u3"}
        ids = iter(range(1, 10_000))

        def at() -> tuple[int, int]:
            start = T0 + draw(st.integers(0, 10**12))
            return start, start + draw(st.integers(0, 10**11))

        def counts() -> dict[str, int]:
            picked = draw(st.dictionaries(st.sampled_from(_COUNT_KEYS), st.integers(0, 10**6), max_size=5))
            return dict(picked)

        root_kind = draw(st.sampled_from(["agent", "chain", "chat", "none"]))
        start, end = at()
        root_attrs: dict[str, Any] = {
            "agent": {"gen_ai.operation.name": "invoke_agent", "gen_ai.request.model": "gpt-4o"},
            "chain": {"openinference.span.kind": "CHAIN"},
            "chat": {"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o", **counts()},
            "none": {"http.route": "/ask"},
        }[root_kind]
        root = f"{next(ids):016x}"
        spans.append(
            span(
                root_kind,
                {**root_attrs, **common},
                trace=trace,
                sid=root,
                start=start,
                end=end,
                resource=resource,
            )
        )
        last_round = root if root_kind == "chat" else None
        for kind in draw(st.lists(st.sampled_from(_KINDS), max_size=8)):
            sid, (start, end) = f"{next(ids):016x}", at()
            where_to = {"trace": trace, "sid": sid, "start": start, "end": end, "resource": resource}
            attributes = {**common, **counts()}
            if kind == "http":
                if last_round is None:
                    continue
                spans.append(http_client(parent=last_round, attributes=common, **where_to))
                continue
            made = _child(
                draw, kind, root if kind != "oi_tool" else last_round or root, attributes, common, where_to
            )
            spans.append(made)
            if kind in {"chat", "openinference", "openllmetry", "anthropic", "gemini"}:
                last_round = sid
    return spans


def _child(
    draw: st.DrawFn,
    kind: str,
    parent: str,
    counted: dict[str, Any],
    common: dict[str, Any],
    where: dict[str, Any],
) -> Span:
    if kind == "chat":
        return openai_v2_chat(parent=parent, attributes=counted, **where)
    if kind == "openinference":
        return openinference_llm(parent=parent, attributes=counted, **where)
    if kind == "openllmetry":
        return openllmetry_chat(parent=parent, attributes=counted, **where)
    if kind in {"anthropic", "gemini"}:
        provider, model = (
            ("anthropic", "claude-sonnet-4-5") if kind == "anthropic" else ("gcp.gemini", "gemini-2.5-pro")
        )
        attributes = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": provider,
            "gen_ai.request.model": model,
        }
        return span("chat", {**attributes, **counted}, parent=parent, **where)
    if kind == "tool":
        return tool(
            call_id=draw(st.sampled_from(["call_1", None])), parent=parent, attributes=common, **where
        )
    if kind == "oi_tool":
        return openinference_tool(parent=parent, attributes=common, **where)
    return span("SELECT", {"db.system": "postgresql"}, kind=KIND_CLIENT, parent=parent, **where)


_COUNT_KEYS = (
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.output_tokens",
    "gen_ai.usage.cache_read.input_tokens",
    "gen_ai.usage.cache_creation.input_tokens",
    "gen_ai.usage.reasoning.output_tokens",
    "llm.token_count.prompt",
    "llm.token_count.completion",
    "llm.token_count.prompt_details.cache_read",
    "llm.token_count.completion_details.reasoning",
)


def _wire(mapped: Mapped) -> set[bytes]:
    return {codec.encode(e) for e in mapped.events}


@settings(max_examples=100, deadline=None)
@given(requests(), st.data())
def test_any_request_maps_the_same_whatever_its_order_and_its_events_survive_the_wire(
    spans: list[Span], data: st.DataObject
) -> None:
    mapped = map_spans(spans)
    assert map_spans(spans) == mapped
    assert _wire(map_spans(data.draw(st.permutations(spans)))) == _wire(mapped)
    assert map_spans(spans + spans).events == mapped.events  # the same export twice in one request
    for e in mapped.events:
        assert codec.decode(codec.encode(e)) == e


@settings(max_examples=100, deadline=None)
@given(requests())
def test_token_parts_never_exceed_their_wholes(spans: list[Span]) -> None:
    for e in map_spans(spans).events:
        usage = getattr(e, "usage", None)
        if usage is None:
            continue
        assert (usage.cache_read_tokens or 0) + (usage.cache_write_tokens or 0) <= usage.prompt_tokens
        assert (usage.reasoning_tokens or 0) <= usage.completion_tokens
        assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


@settings(max_examples=100, deadline=None)
@given(requests(), st.data())
def test_the_same_spans_split_across_two_requests_give_the_same_event_ids(
    spans: list[Span], data: st.DataObject
) -> None:
    # An HTTP span goes with its parent: only then can a request tell that it is a forward.
    first = data.draw(st.sets(st.sampled_from([(s.trace_id, s.span_id) for s in spans])))
    for s in spans:
        if s.kind == KIND_CLIENT and "url.full" in s.attributes and (s.trace_id, s.parent_span_id) in first:
            first.add((s.trace_id, s.span_id))
        elif (s.trace_id, s.span_id) in first and "url.full" in s.attributes:
            first.discard((s.trace_id, s.span_id))
    a = [s for s in spans if (s.trace_id, s.span_id) in first]
    b = [s for s in spans if (s.trace_id, s.span_id) not in first]
    whole = map_spans(spans)
    parts = [map_spans(a), map_spans(b)] if data.draw(st.booleans()) else [map_spans(b), map_spans(a)]
    assert {e.event_id for p in parts for e in p.events} == {e.event_id for e in whole.events}
    assert {(r.span_id, r.field) for p in parts for r in p.rejected} == {
        (r.span_id, r.field) for r in whole.rejected
    }


# Values the writers of producer/otlp/build.py must never let through unchecked: NUL, unpaired
# surrogates (OTLP/JSON's json.loads makes them), text that lengthens when lowercased, overlong
# text, counts whose sums overflow, every JSON type where text or a count belongs.
_ODD_TEXT = st.sampled_from(["", " ", "\x00", "a\ud800b", "\udfff", "İ" * 200, "x" * 257, 'ü\n"\\'])
_TEXT = st.text(max_size=40) | _ODD_TEXT
_VALUE = (
    _TEXT
    | st.integers(-(2**64), 2**64)
    | st.sampled_from([2**63 - 1, 2**62])
    | st.floats()
    | st.booleans()
    | st.none()
    | st.lists(st.integers(), max_size=2)
)
_ANY_KEYS = (
    "gen_ai.request.model",
    "gen_ai.response.model",
    "gen_ai.provider.name",
    "llm.provider",
    "gen_ai.conversation.id",
    "user.id",
    "gen_ai.tool.name",
    "gen_ai.tool.call.id",
    "error.type",
    "gen_ai.response.time_to_first_chunk",
    "url.full",
    "server.address",
    "server.port",
    "url.path",
    "http.response.status_code",
    "llm.invocation_parameters",
    *_COUNT_KEYS,
)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_any_attribute_values_give_events_the_contract_takes_or_a_rejection_naming_the_attribute(
    data: st.DataObject,
) -> None:
    """The writers skip pydantic: whatever the attributes, names and status messages, every event
    they write is one the contract decodes, routed by its contract routing id; a span whose
    values cannot be written is rejected, naming a field."""

    def attributes(role: dict[str, Any]) -> dict[str, Any]:
        drawn = data.draw(st.dictionaries(st.sampled_from(_ANY_KEYS), _VALUE | _ODD_TEXT, max_size=6))
        odd = {
            key: data.draw(_ODD_TEXT) for key in data.draw(st.sets(st.sampled_from(_ANY_KEYS), max_size=2))
        }
        base = {"gen_ai.request.model": "gpt-4o", "url.full": "https://api.openai.com/v1"}
        return {**base, **drawn, **odd, **role}

    def status() -> dict[str, Any]:
        return {"status": data.draw(st.sampled_from([0, STATUS_ERROR])), "message": data.draw(_TEXT)}

    root, chat, call, request = (f"{n:016x}" for n in range(1, 5))
    spans = [
        span(data.draw(_TEXT), attributes({"gen_ai.operation.name": "invoke_agent"}), sid=root, **status()),
        span(
            data.draw(_TEXT), attributes({"gen_ai.operation.name": "chat"}), sid=chat, parent=root, **status()
        ),
        span(
            "execute_tool " + data.draw(_TEXT),
            attributes({"gen_ai.operation.name": "execute_tool"}),
            sid=call,
            parent=root,
            **status(),
        ),
        span(
            data.draw(_TEXT),
            attributes({"http.request.method": "POST"}),
            sid=request,
            parent=chat,
            kind=KIND_CLIENT,
            **status(),
        ),
    ]
    mapped = map_spans(spans)
    for route, raw in mapped.wire:
        event = codec.decode(raw)  # a writer and the contract drifted apart if this raises
        assert routing_id(event) == route
    for rejection in mapped.rejected:
        assert rejection.field and rejection.reason
    made = {e.event_id for e in mapped.events}
    for s in spans[1:3]:  # a round and a tool call: their two events, or a rejection
        kinds = ("round" if s.span_id == chat else "tool",)
        wanted = {
            event_id(f"{s.trace_id}/{s.span_id}/{k}.{end}") for k in kinds for end in ("started", "completed")
        }
        assert wanted <= made or any(r.span_id == s.span_id for r in mapped.rejected)
