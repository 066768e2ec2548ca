"""Cheap caller-side argument checks that mirror the contract's field rules.

A typed publish call runs these instead of building the pydantic model (a few hundred ns instead
of ~5 µs); the sender thread turns the checked values into wire JSON that validates against the
contract. A wrong argument raises ValueError naming the argument, the rule and the value.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from contract.events import (
    BIGINT_MAX,
    MAX_ERROR_LENGTH,
    MAX_ID_LENGTH,
    MAX_NAME_LENGTH,
    TokenUsage,
    usage_refusal,
)
from contract.fields import unstorable

#: prompt, completion, total, then the parts: cache_read, cache_write, reasoning (None: not reported).
Usage = tuple[int, int, int, int | None, int | None, int | None]
_PARTS = ("cache_read_tokens", "cache_write_tokens", "reasoning_tokens")

SESSION_STATUSES = frozenset({"completed", "awaiting_response", "error", "cancelled"})
ROUND_STATUSES = frozenset({"success", "error", "cancelled"})
FORWARD_STATUSES = frozenset({"success", "error", "timeout"})


def bad(name: str, value: Any, rule: str) -> ValueError:
    shown = repr(value)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    return ValueError(f"{name}: must be {rule}; got {shown} ({type(value).__name__})")


def _storable(value: str) -> bool:
    """Storable as PostgreSQL text (contract.fields.unstorable): else the sender could only drop
    the event."""
    return unstorable(value) is None


def ident(name: str, value: Any) -> None:
    if not isinstance(value, str) or not 0 < len(value) <= MAX_ID_LENGTH or not _storable(value):
        raise bad(name, value, f"a non-empty str of at most {MAX_ID_LENGTH} characters, UTF-8, without NUL")


def label(name: str, value: Any) -> None:
    if not isinstance(value, str) or not 0 < len(value) <= MAX_NAME_LENGTH or not _storable(value):
        raise bad(name, value, f"a non-empty str of at most {MAX_NAME_LENGTH} characters, UTF-8, without NUL")


def count(name: str, value: Any) -> None:
    if type(value) is not int or not 0 <= value <= BIGINT_MAX:
        raise bad(name, value, f"an int between 0 and {BIGINT_MAX}")


def flag(name: str, value: Any) -> None:
    if value is not True and value is not False:
        raise bad(name, value, "a bool")


def choice(name: str, value: Any, allowed: frozenset[str]) -> None:
    if not isinstance(value, str) or value not in allowed:  # isinstance first: a list is unhashable
        raise bad(name, value, f"one of {sorted(allowed)}")


def error_text(name: str, value: Any) -> None:
    if value is not None and (
        not isinstance(value, str) or len(value) > MAX_ERROR_LENGTH or not _storable(value)
    ):
        raise bad(name, value, f"None or a str of at most {MAX_ERROR_LENGTH} characters, UTF-8, without NUL")


def timestamp(name: str, value: Any) -> float:
    """Unix seconds: a finite int or float (not a bool), as a float."""
    try:
        seconds = float(value) if isinstance(value, int | float) and not isinstance(value, bool) else math.nan
    except OverflowError:  # an int beyond float's range
        seconds = math.nan
    if not math.isfinite(seconds):
        raise bad(name, value, "a finite number of unix seconds")
    return seconds


def status_code(name: str, value: Any) -> None:
    if value is not None and (type(value) is not int or not 100 <= value <= 599):
        raise bad(name, value, "None or an int between 100 and 599")


def usage(
    name: str,
    value: Any,
    cache_read_tokens: Any = None,
    cache_write_tokens: Any = None,
    reasoning_tokens: Any = None,
) -> Usage:
    """A TokenUsage, a mapping with prompt/completion(/total)_tokens (and maybe the parts), or a
    (prompt, completion[, total]) tuple, as a checked :data:`Usage`. A missing total is the sum.
    A part given as an argument wins over the one in ``value``; the parts must fit in their
    wholes (cache reads and writes in prompt_tokens, reasoning in completion_tokens)."""
    given: list[Any] = [cache_read_tokens, cache_write_tokens, reasoning_tokens]
    if isinstance(value, TokenUsage):
        wholes: tuple[Any, ...] = (value.prompt_tokens, value.completion_tokens, value.total_tokens)
        inner: tuple[Any, ...] = (value.cache_read_tokens, value.cache_write_tokens, value.reasoning_tokens)
    elif isinstance(value, Mapping):
        wholes = (value.get("prompt_tokens"), value.get("completion_tokens"), value.get("total_tokens"))
        inner = tuple(value.get(part) for part in _PARTS)
    elif isinstance(value, tuple | list) and len(value) in (2, 3):
        wholes = tuple(value) if len(value) == 3 else (*value, None)
        inner = (None, None, None)
    elif isinstance(value, tuple) and len(value) == 6:  # a Usage checked before (the scopes keep one)
        wholes, inner = value[:3], value[3:]
    else:
        raise bad(name, value, "a TokenUsage, a mapping of *_tokens or a (prompt, completion[, total]) tuple")
    prompt, completion, total = wholes
    count(f"{name}.prompt_tokens", prompt)
    count(f"{name}.completion_tokens", completion)
    if total is None:
        total = prompt + completion
    count(f"{name}.total_tokens", total)
    parts = [mine if mine is not None else theirs for mine, theirs in zip(given, inner, strict=True)]
    for part, mine, theirs in zip(_PARTS, given, inner, strict=True):
        if mine is not None:
            count(part, mine)
        elif theirs is not None:
            count(f"{name}.{part}", theirs)
    reason = usage_refusal(prompt, completion, parts[0], parts[1], parts[2])
    if reason is not None:
        raise ValueError(f"{name}: {reason}")
    return (prompt, completion, total, parts[0], parts[1], parts[2])


def optional_usage(
    name: str,
    value: Any,
    cache_read_tokens: Any = None,
    cache_write_tokens: Any = None,
    reasoning_tokens: Any = None,
) -> Usage | None:
    """:func:`usage`, or None without one (parts given without a usage: a ValueError naming them)."""
    if value is None:
        parts = {"cache_read_tokens": cache_read_tokens, "cache_write_tokens": cache_write_tokens,
                 "reasoning_tokens": reasoning_tokens}  # fmt: skip
        named = [part for part, v in parts.items() if v is not None]
        if named:
            raise ValueError(f"{', '.join(named)}: given without a usage; they are parts of its token counts")
        return None
    return usage(name, value, cache_read_tokens, cache_write_tokens, reasoning_tokens)


def optional_count(name: str, value: Any) -> None:
    if value is not None:
        count(name, value)


def optional_label(name: str, value: Any) -> None:
    if value is not None:
        label(name, value)


def optional_ident(name: str, value: Any) -> None:
    if value is not None:
        ident(name, value)


def given(event_id: Any, occurred_at: Any) -> None:
    """Checks for an explicitly given event_id / occurred_at (both optional)."""
    if event_id is not None:
        ident("event_id", event_id)
    if occurred_at is not None:
        if not isinstance(occurred_at, datetime) or occurred_at.utcoffset() is None:
            raise bad("occurred_at", occurred_at, "a timezone-aware datetime")
        try:
            occurred_at.astimezone(UTC)
        except OverflowError:  # e.g. 9999-12-31T23:00-05:00: no UTC instant; the contract refuses it
            raise bad("occurred_at", occurred_at, "a datetime that exists in UTC (years 1 to 9999)") from None
