"""Durations as people write them in flags and variables (90d, 12h, 30m, 45s, 500ms), read and
written back the same way. Here because the producer (``simulate --backfill``) and the worker
(retention, grace, windows) both take them.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from datetime import timedelta
from typing import TypeVar

T = TypeVar("T")

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


#: Longest duration accepted anywhere: beyond it, now - duration leaves datetime's range.
MAX_DURATION = timedelta(days=36_500)


def parse_duration(text: str, *, name: str = "duration") -> timedelta:
    """'90d', '12h', '15m', '30s' or '500ms', up to 100 years. Raises ValueError naming ``name``;
    a bare number is refused (is 90 seconds or days?) with the spellings that would do."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"{name}: {text!r} is not a duration; use e.g. 30s, 15m, 6h or 90d")
    number, unit = match.groups()
    if unit is None:
        raise ValueError(f"{name}: {text!r} has no unit; write {number}s, {number}m, {number}h or {number}d")
    try:
        value = timedelta(seconds=float(number) * _UNITS[unit])
    except OverflowError:
        value = MAX_DURATION * 2
    if value > MAX_DURATION:
        raise ValueError(f"{name}: {text!r} is longer than {MAX_DURATION.days} days")
    return value


def format_duration(value: timedelta) -> str:
    """A duration as people write it (and parse_duration reads it): 1d, 90m, 45s, 1.5s."""
    seconds = value.total_seconds()
    for unit in ("d", "h", "m", "s"):
        size = _UNITS[unit]
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def duration_arg(flag: str) -> Callable[[str], timedelta]:
    """An argparse ``type`` for a duration flag: argparse names the flag, the error the rest."""
    return _flag_type(flag, parse_duration)


def parse_ms(text: str, *, name: str = "duration") -> int:
    """Whole milliseconds from '2s', '500ms' or '1m'; a bare number is milliseconds, as these
    settings were written before they took units (``METRICS_BLOCK_MS=2000``)."""
    stripped = text.strip()
    if stripped.isdigit():
        return int(stripped)
    return round(parse_duration(text, name=name).total_seconds() * 1000)


def ms_arg(flag: str) -> Callable[[str], int]:
    """An argparse ``type`` for a flag in milliseconds that also takes units (``--block-ms 2s``)."""
    return _flag_type(flag, parse_ms)


def _flag_type(flag: str, parse: Callable[..., T]) -> Callable[[str], T]:
    """``parse(text, name=flag)`` as an argparse ``type``: its ValueError without the flag's name,
    which argparse puts in front itself."""

    def typed(text: str) -> T:
        try:
            return parse(text, name=flag)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc).removeprefix(f"{flag}: ")) from None

    return typed


def seconds_arg(flag: str) -> Callable[[str], float]:
    """An argparse ``type`` for a flag in seconds that also takes units (``--timeout 2m``); a bare
    number is seconds, as these flags were written before they took units."""

    def parse(text: str) -> float:
        try:
            return float(text)
        except ValueError:
            pass
        try:
            return parse_duration(text, name=flag).total_seconds()
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc).removeprefix(f"{flag}: ")) from None

    return parse
