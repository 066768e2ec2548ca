"""The contract's events, written straight to their wire JSON from the values the mapping read off
a span, and checked here where the mapping could get them wrong.

Why not pydantic: validating each event's dict, then dumping the model, was a third of a
request's mapping (bench/otlp_mapping.py). Every value reaching a writer is valid by construction
or checked first: ids are made from hex span ids (producer/otlp/ids.py); session, user, model and
call ids went through ``attributes.text`` (length, NUL, UTF-8); counts through ``attributes``'
own checks, which also keep every part within its whole. What is left is checked here, a refusal
naming the span attribute: a name built from a span name or a URL (:func:`name`), an error text
(:func:`error`), token sums over the contract's maximum (:func:`usage`), and the span's times
(:func:`check_times`). tests/otlp/test_mapping.py decodes every event with ``contract.codec`` for
any attribute values, so a writer and the contract cannot drift apart.
"""

from __future__ import annotations

import time
from functools import lru_cache
from json.encoder import encode_basestring

from contract.events import BIGINT_MAX, MAX_NAME_LENGTH, SCHEMA_VERSION
from contract.fields import unstorable
from producer.otlp.attributes import Refused
from producer.otlp.ids import span_event_id
from producer.otlp.spans import Span

Wire = tuple[str, bytes]  # (the event's routing id, its JSON): what is published
Usage = dict[str, int | None]  # attributes.usage's

_s = encode_basestring  # JSON string literal; C, non-ASCII kept (checked as UTF-8 before)


def check_times(span: Span) -> None:
    """A span that makes events starts after 1970 and ends no earlier than it starts."""
    if span.start_ns <= 0:
        raise Refused("start_time_unix_nano", f"must be a time after 1970, not {span.start_ns}")
    if span.end_ns < span.start_ns:
        raise Refused(
            "end_time_unix_nano", f"is before start_time_unix_nano ({span.end_ns} < {span.start_ns})"
        )


def name(value: str, field: str) -> str:
    """A name the mapping built (from a span name, a URL, a lowercased provider): non-empty, at
    most the contract's length, storable; else refused, naming ``field``."""
    if not value:
        raise Refused(field, "is empty")
    if len(value) > MAX_NAME_LENGTH:
        raise Refused(field, f"is {len(value):,} characters long, over the maximum of {MAX_NAME_LENGTH:,}")
    bad = unstorable(value)
    if bad is not None:
        raise Refused(field, bad)
    return value


def error(value: str) -> str:
    """An error text (attributes.error_text: NUL replaced, cut to the maximum) that is UTF-8."""
    if not value.isascii() and unstorable(value) is not None:
        raise Refused("error", "is not valid UTF-8 text")
    return value


def usage(counts: Usage, field: str = "usage") -> Usage:
    """Counts (each from 0 to BIGINT_MAX already) whose wholes, with the parts added in, still
    are; else refused as the contract would, naming the whole."""
    if counts["total_tokens"] > BIGINT_MAX:  # type: ignore[operator]
        for whole in ("prompt_tokens", "completion_tokens", "total_tokens"):
            if counts[whole] > BIGINT_MAX:  # type: ignore[operator]
                reason = f"Input should be less than or equal to {BIGINT_MAX} (got {counts[whole]})"
                raise Refused(f"{field}.{whole}", reason)  # the contract's words
    return counts


@lru_cache(maxsize=4096)
def _second(sec: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))


def stamp(ns: int) -> str:
    """Unix nanoseconds (after 1970) -> RFC 3339 in UTC, cut to the microsecond."""
    us = ns // 1000
    return f"{_second(us // 1_000_000)}.{us % 1_000_000:06d}Z"


def _head(event_type: str, trace_id: str, span_id: str, ns: int) -> str:
    event_id = span_event_id(trace_id, span_id, event_type)
    return f'{{"v":{SCHEMA_VERSION},"type":"{event_type}","event_id":"{event_id}","occurred_at":"{stamp(ns)}"'


def _opt(key: str, value: str | int | None) -> str:
    """An optional field: nothing when None (absent means not given)."""
    if value is None:
        return ""
    return f',"{key}":{value:d}' if isinstance(value, int) else f',"{key}":{_s(value)}'


_USAGE = ',"usage":'


def _usage(u: Usage) -> str:
    return (
        f'{{"prompt_tokens":{u["prompt_tokens"]:d},"completion_tokens":{u["completion_tokens"]:d}'
        f',"total_tokens":{u["total_tokens"]:d}{_opt("cache_read_tokens", u["cache_read_tokens"])}'
        f"{_opt('cache_write_tokens', u['cache_write_tokens'])}"
        f"{_opt('reasoning_tokens', u['reasoning_tokens'])}}}"
    )


# --- one writer per event type the receiver makes; ``span`` gives the event id -------------------


def session_started(event_id: str, ns: int, session_id: str, model: str, user_id: str | None) -> Wire:
    text = (
        f'{{"v":{SCHEMA_VERSION},"type":"session.started","event_id":"{event_id}","occurred_at":"{stamp(ns)}"'
        f',"session_id":{_s(session_id)},"model":{_s(model)}{_opt("user_id", user_id)}}}'
    )
    return session_id, text.encode()


def session_completed(span: Span, session_id: str, status: str) -> Wire:
    head = _head("session.completed", span.trace_id, span.span_id, span.end_ns)
    return session_id, f'{head},"session_id":{_s(session_id)},"status":"{status}"}}'.encode()


def round_started(span: Span, round_id: str, session_id: str, model: str, provider: str | None) -> Wire:
    head = _head("round.started", span.trace_id, span.span_id, span.start_ns)
    text = (
        f'{head},"round_id":{_s(round_id)},"session_id":{_s(session_id)},"model":{_s(model)}'
        f"{_opt('provider', provider)}}}"
    )
    return session_id, text.encode()


def round_completed(
    span: Span, round_id: str, session_id: str, status: str, counts: Usage, err: str | None, ttft: int | None
) -> Wire:
    head = _head("round.completed", span.trace_id, span.span_id, span.end_ns)
    text = (
        f'{head},"round_id":{_s(round_id)},"session_id":{_s(session_id)},"status":"{status}"'
        f',"usage":{_usage(counts)}{_opt("error", err)}{_opt("time_to_first_token_ms", ttft)}}}'
    )
    return session_id, text.encode()


def tool_started(span: Span, call_id: str, round_id: str, session_id: str, tool_name: str) -> Wire:
    head = _head("tool.started", span.trace_id, span.span_id, span.start_ns)
    text = (
        f'{head},"tool_call_id":{_s(call_id)},"round_id":{_s(round_id)},"session_id":{_s(session_id)}'
        f',"tool_name":{_s(tool_name)}}}'
    )
    return session_id, text.encode()


def tool_completed(span: Span, call_id: str, round_id: str, session_id: str, err: str | None) -> Wire:
    head = _head("tool.completed", span.trace_id, span.span_id, span.end_ns)
    text = (
        f'{head},"tool_call_id":{_s(call_id)},"round_id":{_s(round_id)},"session_id":{_s(session_id)}'
        f',"success":{"false" if err is not None else "true"}{_opt("error", err)}}}'
    )
    return session_id, text.encode()


def forward_started(
    span: Span,
    forward_id: str,
    endpoint: str,
    model: str,
    is_stream: bool,
    provider: str | None,
    session_id: str,
    round_id: str | None,
) -> Wire:
    head = _head("forward.started", span.trace_id, span.span_id, span.start_ns)
    text = (
        f'{head},"forward_id":{_s(forward_id)},"endpoint":{_s(endpoint)},"model":{_s(model)}'
        f',"is_stream":{"true" if is_stream else "false"}{_opt("provider", provider)}'
        f',"session_id":{_s(session_id)}{_opt("round_id", round_id)}}}'
    )
    return forward_id, text.encode()


def forward_completed(
    span: Span, forward_id: str, status: str, code: int | None, counts: Usage | None, err: str | None
) -> Wire:
    head = _head("forward.completed", span.trace_id, span.span_id, span.end_ns)
    text = (
        f'{head},"forward_id":{_s(forward_id)},"status":"{status}"{_opt("status_code", code)}'
        f"{'' if counts is None else _USAGE + _usage(counts)}{_opt('error', err)}}}"
    )
    return forward_id, text.encode()
