"""What one span's own attributes say, whichever convention wrote them (the OpenTelemetry GenAI
conventions, OpenInference, OpenLLMetry): its role, model, provider, token usage in the contract's
meaning, time to first token, streaming, error, session and user attributes, tool call ids.

Pure reads of one span, a few dictionary lookups each. The tree (which session a span inherits,
which round a tool call belongs to) is producer/otlp/sessions.py's and tools.py's. A value that
cannot be used raises :class:`Refused`, naming the attribute and the reason; the mapping turns it into a
:class:`~producer.otlp.spans.Rejection`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from typing import Any

from contract.events import BIGINT_MAX, MAX_ERROR_LENGTH, MAX_ID_LENGTH, MAX_NAME_LENGTH, part_too_large
from contract.fields import unstorable
from producer.otlp.spans import KIND_CLIENT, STATUS_ERROR, Span


class Refused(ValueError):
    """A span attribute the mapping cannot use: ``field`` names it, ``reason`` says why."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


# Roles: what a span is to the mapping.
NONE = 0  # not GenAI, not an HTTP client span: ignored
ROUND = 1  # a model call: round.started + round.completed
TOOL = 2  # a tool call: tool.started + tool.completed
AGENT = 3  # an agent invocation: part of its session (start time, model), no event of its own
CHAIN = 4  # a workflow or chain: part of its session, no event of its own
OTHER = 5  # any other GenAI span (embeddings, retrieval, ...): an ancestor only
HTTP = 6  # an HTTP client span: a forward when a GenAI span is its ancestor

#: Roles whose spans belong to their session (its start time; a root one ends a trace's session).
SESSION_ROLES = frozenset({ROUND, TOOL, AGENT, CHAIN})

#: ``gen_ai.operation.name`` -> role (any other name: OTHER).
_OPERATIONS = {
    "chat": ROUND,
    "text_completion": ROUND,
    "generate_content": ROUND,
    "execute_tool": TOOL,
    "invoke_agent": AGENT,
    "create_agent": OTHER,
    "invoke_workflow": CHAIN,
}
#: OpenInference's ``openinference.span.kind`` -> role (any other kind: OTHER).
_OPENINFERENCE_KINDS = {"LLM": ROUND, "TOOL": TOOL, "AGENT": AGENT, "CHAIN": CHAIN}
#: OpenLLMetry's ``llm.request.type``, from before it wrote ``gen_ai.operation.name``.
_LEGACY_TYPES = {"chat": ROUND, "completion": ROUND}


def role(span: Span) -> int:
    """The span's role: its own operation name decides, else its OpenInference kind, else
    OpenLLMetry's older request type; a client span with an HTTP method is HTTP."""
    a = span.attributes
    op = a.get("gen_ai.operation.name")
    if op is not None:
        return _OPERATIONS.get(op, OTHER) if isinstance(op, str) else OTHER
    kind = a.get("openinference.span.kind")
    if kind is not None:
        return _OPENINFERENCE_KINDS.get(kind, OTHER) if isinstance(kind, str) else OTHER
    legacy = a.get("llm.request.type")
    if legacy is not None:
        return _LEGACY_TYPES.get(legacy, OTHER) if isinstance(legacy, str) else OTHER
    if span.kind == KIND_CLIENT and ("http.request.method" in a or "http.method" in a):
        return HTTP
    return NONE


# --- names ----------------------------------------------------------------------------------

MODEL_KEYS = (
    "gen_ai.response.model",
    "gen_ai.request.model",
    "llm.response.model_name",
    "llm.model_name",
    "llm.request.model_name",
)
PROVIDER_KEYS = ("gen_ai.provider.name", "gen_ai.system", "llm.provider", "llm.system")
SESSION_KEYS = (
    "gen_ai.conversation.id",
    "session.id",
    "traceloop.association.properties.session_id",
    "traceloop.association.properties.conversation_id",
    "traceloop.association.properties.thread_id",
    "langfuse.session.id",
)
USER_KEYS = (
    "user.id",
    "enduser.id",
    "traceloop.association.properties.user_id",
    "langfuse.user.id",
    "gen_ai.user",
)
TOOL_NAME_KEYS = ("gen_ai.tool.name", "tool.name")

#: Other spellings of a provider -> the GenAI conventions' ``gen_ai.provider.name`` value. Matched
#: after lowercasing; any other name is kept as it is, lowercased.
PROVIDER_ALIASES = {
    "az.ai.openai": "azure.ai.openai",  # gen_ai.system before gen_ai.provider.name; OpenLLMetry's
    "az.ai.inference": "azure.ai.inference",
    "azure": "azure.ai.openai",  # OpenInference's llm.provider
    "azure_openai": "azure.ai.openai",
    "aws": "aws.bedrock",  # OpenInference
    "bedrock": "aws.bedrock",
    "google": "gcp.gen_ai",  # OpenInference: any Google endpoint
    "vertex_ai": "gcp.vertex_ai",  # gen_ai.system's older values
    "vertexai": "gcp.vertex_ai",  # OpenInference's llm.system
    "gemini": "gcp.gemini",
    "xai": "x_ai",
    "mistralai": "mistral_ai",  # OpenInference
    "mistral": "mistral_ai",
    "watsonx": "ibm.watsonx.ai",
}


def text(a: Mapping[str, Any], keys: tuple[str, ...], limit: int) -> tuple[str, str] | None:
    """The first of ``keys`` set to a non-empty value, as (value, the key), or None. An integer
    is taken as its decimal text; any other type, a value over ``limit`` characters or one that
    PostgreSQL cannot store is refused, naming the key."""
    for key in keys:
        value = a.get(key)
        if value is None or value == "":
            continue
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        elif not isinstance(value, str):
            raise Refused(key, f"must be a string, not {type(value).__name__} ({value!r:.60})")
        if len(value) > limit:
            raise Refused(key, f"is {len(value):,} characters long, over the maximum of {limit:,}")
        bad = unstorable(value)
        if bad is not None:
            raise Refused(key, bad)
        return value, key
    return None


def model(a: Mapping[str, Any]) -> tuple[str, str] | None:
    return text(a, MODEL_KEYS, MAX_NAME_LENGTH)


def session(a: Mapping[str, Any]) -> tuple[str, str] | None:
    return text(a, SESSION_KEYS, MAX_ID_LENGTH)


def user(a: Mapping[str, Any]) -> tuple[str, str] | None:
    return text(a, USER_KEYS, MAX_ID_LENGTH)


def provider(a: Mapping[str, Any]) -> str | None:
    found = text(a, PROVIDER_KEYS, MAX_NAME_LENGTH)
    if found is None:
        return None
    name = found[0].strip().lower()
    name = PROVIDER_ALIASES.get(name, name)
    if len(name) > MAX_NAME_LENGTH:  # a few characters lengthen when lowercased
        raise Refused(found[1], f"is over {MAX_NAME_LENGTH:,} characters long once lowercased")
    return name or None


def tool_name(span: Span, fallback_prefix: str) -> str:
    """``gen_ai.tool.name`` or OpenInference's ``tool.name``; else the span's name after
    ``fallback_prefix`` (the GenAI conventions name the span ``execute_tool <name>``;
    OpenInference names it after the tool: prefix "")."""
    found = text(span.attributes, TOOL_NAME_KEYS, MAX_NAME_LENGTH)
    if found is not None:
        return found[0]
    name = span.name[len(fallback_prefix) :].strip() if span.name.startswith(fallback_prefix) else ""
    if not name:
        raise Refused("gen_ai.tool.name", "is required: a tool call needs its tool's name (or tool.name)")
    return name[:MAX_NAME_LENGTH]


# --- usage ----------------------------------------------------------------------------------

#: Each slot of the contract's usage and the attributes that report it, first found wins.
PROMPT_KEYS = ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens", "llm.token_count.prompt")
COMPLETION_KEYS = (
    "gen_ai.usage.output_tokens",
    "gen_ai.usage.completion_tokens",
    "llm.token_count.completion",
)
CACHE_READ_KEYS = (
    "gen_ai.usage.cache_read.input_tokens",
    "llm.token_count.prompt_details.cache_read",
    "gen_ai.usage.cache_read_input_tokens",  # OpenLLMetry before the dotted name
)
CACHE_WRITE_KEYS = (
    "gen_ai.usage.cache_creation.input_tokens",
    "llm.token_count.prompt_details.cache_write",
    "gen_ai.usage.cache_creation_input_tokens",
)
REASONING_KEYS = (
    "gen_ai.usage.reasoning.output_tokens",
    "gen_ai.usage.reasoning_tokens",  # OpenLLMetry
    "llm.token_count.completion_details.reasoning",
)


def _count(a: Mapping[str, Any], keys: tuple[str, ...]) -> tuple[int, str] | None:
    for key in keys:
        value = a.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise Refused(key, f"must be a count of tokens, not {type(value).__name__} ({value!r:.60})")
        if isinstance(value, float):
            if not value.is_integer():  # JavaScript SDKs send whole numbers as doubles
                raise Refused(key, f"must be a whole number of tokens, not {value!r}")
            value = int(value)
        if value < 0 or value > BIGINT_MAX:
            raise Refused(key, f"must be from 0 to {BIGINT_MAX}, not {value}")
        return value, key
    return None


def excludes_cache(provider_name: str | None, model_name: str) -> bool:
    """Whether the provider's own input count leaves the prompt cache out (Anthropic's, on its
    API, Bedrock or Vertex AI), so an instrumentation that copied it as it is reports a whole
    smaller than its cache parts."""
    return provider_name == "anthropic" or "claude" in model_name.lower()


def excludes_reasoning(provider_name: str | None, model_name: str) -> bool:
    """Whether the provider's own output count leaves reasoning out (Gemini's candidates count
    does not hold its thoughts)."""
    return (provider_name or "").startswith("gcp.") or "gemini" in model_name.lower()


def usage(a: Mapping[str, Any], provider_name: str | None, model_name: str) -> dict[str, int | None]:
    """The span's token usage in the contract's meaning: cache reads and writes are parts of
    prompt_tokens, reasoning a part of completion_tokens (the GenAI conventions and OpenInference
    count them so). Absent counts are 0 (parts: None, not reported). A whole smaller than its
    parts from a provider whose own count leaves them out (:func:`excludes_cache`,
    :func:`excludes_reasoning`) was copied from that provider as it is: the parts are added in.
    From any other provider it is refused, naming the part."""
    prompt = _count(a, PROMPT_KEYS)
    completion = _count(a, COMPLETION_KEYS)
    read = _count(a, CACHE_READ_KEYS)
    write = _count(a, CACHE_WRITE_KEYS)
    reasoning = _count(a, REASONING_KEYS)
    p, p_key = prompt if prompt else (0, PROMPT_KEYS[0])
    c, c_key = completion if completion else (0, COMPLETION_KEYS[0])
    parts = dict((found[1], found[0]) for found in (read, write) if found is not None)
    if sum(parts.values()) > p:
        if not excludes_cache(provider_name, model_name):
            # The contract's order: the cache read alone first, then read and write together.
            if read is not None and read[0] > p:
                raise Refused(read[1], part_too_large(p_key, p, {read[1]: read[0]}) or "")
            raise Refused(next(reversed(parts)), part_too_large(p_key, p, parts) or "")
        p += sum(parts.values())
    if reasoning is not None and reasoning[0] > c:
        if not excludes_reasoning(provider_name, model_name):
            raise Refused(reasoning[1], part_too_large(c_key, c, {reasoning[1]: reasoning[0]}) or "")
        c += reasoning[0]
    return {
        "prompt_tokens": p,
        "completion_tokens": c,
        "total_tokens": p + c,
        "cache_read_tokens": read[0] if read else None,
        "cache_write_tokens": write[0] if write else None,
        "reasoning_tokens": reasoning[0] if reasoning else None,
    }


def has_usage(a: Mapping[str, Any]) -> bool:
    return not _WHOLES.isdisjoint(a.keys())


_WHOLES = frozenset(PROMPT_KEYS + COMPLETION_KEYS)


# --- time to first token, streaming ------------------------------------------------------------

TTFT_KEY = "gen_ai.response.time_to_first_chunk"
#: Span events that mark a streamed answer's chunks: OpenInference's first token, OpenLLMetry's
#: one event per chunk (the first of them is the first token).
FIRST_TOKEN_EVENTS = frozenset({"First Token Stream Event", "gen_ai.content.completion.chunk"})


def time_to_first_token_ms(span: Span) -> int | None:
    """``gen_ai.response.time_to_first_chunk`` (seconds) in milliseconds; else the time from the
    span's start to its first first-token event. None when neither says, or when the SDK dropped
    events (the Python SDK drops the oldest: the first chunk may be gone)."""
    seconds = span.attributes.get(TTFT_KEY)
    if seconds is not None:
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not math.isfinite(seconds):
            raise Refused(TTFT_KEY, f"must be a number of seconds, not {seconds!r:.60}")
        if seconds < 0:
            raise Refused(TTFT_KEY, f"must not be negative, not {seconds!r}")
        return min(round(seconds * 1000), BIGINT_MAX)
    if not span.events or span.dropped_events_count:
        return None
    for event in span.events:
        if event.name in FIRST_TOKEN_EVENTS:
            delta = event.time_ns - span.start_ns
            return delta // 1_000_000 if delta >= 0 else None
    return None


_STREAM_FLAGS = ("gen_ai.request.stream", "gen_ai.is_streaming", "llm.is_streaming")


def streamed(span: Span) -> bool:
    """Whether the answer was streamed: the GenAI conventions' ``gen_ai.request.stream``,
    OpenLLMetry's ``gen_ai.is_streaming``, ``"stream": true`` in OpenInference's
    ``llm.invocation_parameters``, or a first-token event."""
    a = span.attributes
    for key in _STREAM_FLAGS:
        if a.get(key) is True:
            return True
    params = a.get("llm.invocation_parameters")
    if isinstance(params, str) and '"stream"' in params:
        try:
            parsed = json.loads(params)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict) and parsed.get("stream") is True:
            return True
    return any(event.name in FIRST_TOKEN_EVENTS for event in span.events[:4])


# --- errors ---------------------------------------------------------------------------------


def failed(span: Span) -> bool:
    """The span's status is ERROR, or it names an ``error.type`` (the GenAI conventions' way)."""
    return span.status_code == STATUS_ERROR or bool(span.attributes.get("error.type"))


def error_text(span: Span) -> str:
    """What went wrong, as one line: ``error.type`` and the status message, else the recorded
    exception's type and message; cut to the contract's maximum, NUL replaced."""
    kind = span.attributes.get("error.type")
    kind = kind if isinstance(kind, str) else ""
    message = span.status_message
    if not message:
        for event in span.events:
            if event.name == "exception":
                message = str(event.attributes.get("exception.message") or "")
                kind = kind or str(event.attributes.get("exception.type") or "")
                break
    if kind and message and not message.startswith(kind):
        found = f"{kind}: {message}"
    else:
        found = message or kind or "the span's status is ERROR"
    return found.replace("\x00", "\ufffd")[:MAX_ERROR_LENGTH]


def cancelled(span: Span) -> bool:
    kind = span.attributes.get("error.type")
    return isinstance(kind, str) and "cancel" in kind.lower()


def timed_out(span: Span) -> bool:
    kind = span.attributes.get("error.type")
    return isinstance(kind, str) and "timeout" in kind.lower()


# --- tool call ids a round's answer carried -----------------------------------------------------


def tool_call_ids(a: Mapping[str, Any]) -> Iterator[str]:
    """The tool call ids a model's answer asked for: OpenInference's
    ``llm.output_messages.N.message.tool_calls.M.tool_call.id``, OpenLLMetry's older
    ``gen_ai.completion.N.tool_calls.M.id``, the GenAI conventions' ``gen_ai.output.messages``
    (JSON, when content capture is on: parts of type ``tool_call``)."""
    for key, value in a.items():
        if not isinstance(value, str):
            continue
        if (key.startswith("llm.output_messages.") and key.endswith(".tool_call.id")) or (
            key.startswith("gen_ai.completion.") and ".tool_calls." in key and key.endswith(".id")
        ):
            yield value
    messages = a.get("gen_ai.output.messages")
    if isinstance(messages, str) and "tool_call" in messages:
        try:
            parsed = json.loads(messages)
        except ValueError:
            return
        for message in parsed if isinstance(parsed, list) else ():
            if not isinstance(message, dict):
                continue
            for part in [*(message.get("parts") or ()), *(message.get("tool_calls") or ())]:
                if (
                    isinstance(part, dict)
                    and isinstance(part.get("id"), str)
                    and part.get("type", "tool_call") in {"tool_call", "function"}
                ):
                    yield part["id"]
