"""The rules file (``METRICS_ALERTS_FILE``, TOML), read and checked whole.

A file with a mistake is refused with one line naming the rule (or receiver), the field, the
value and why: ``alerts.toml: rule "tool failures": threshold: 'high' is not a number``. The
format is in the README (Alerts) and examples/alerts.toml.
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from contract.durations import format_duration, parse_duration
from contract.urls import mask_webhook_url
from worker.alerts.kinds import FILTERS, KINDS, Kind, why_unavailable

COMPARISONS = (">", ">=", "<", "<=")
SEVERITIES = ("info", "warning", "critical")
RECEIVER_KINDS = ("webhook", "slack")
RULE_FIELDS = (
    "name",
    "watch",
    "window",
    "comparison",
    "threshold",
    "min_samples",
    "for",
    "severity",
    "receivers",
    "repeat",
    "group_by",
    "baseline",
    "offset",
    *FILTERS,
)
RECEIVER_FIELDS = ("kind", "url_env", "timeout", "attempts")
MAX_TIMEOUT = timedelta(seconds=10)
MAX_ATTEMPTS = 5
DAY = timedelta(days=1)
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def number(value: float) -> str:
    """A value or threshold as people read it: whole numbers whole (50000000, not 5e+07), others
    to four significant digits (0.3333)."""
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.4g}"


class RulesError(ValueError):
    """A rules file that cannot be used; the message is one line."""


@dataclass(frozen=True)
class Receiver:
    name: str
    kind: str  # "webhook" (the generic JSON body) or "slack"
    url_env: str
    url: str | None = field(default=None, repr=False)  # None: the variable is not set here
    timeout: timedelta = timedelta(seconds=5)
    attempts: int = 3

    @property
    def masked_url(self) -> str:
        return mask_webhook_url(self.url) if self.url else f"(${self.url_env} not set)"


@dataclass(frozen=True)
class Rule:
    name: str
    watch: str
    window: timedelta | None
    comparison: str
    threshold: float
    min_samples: int = 1
    hold: timedelta = timedelta(0)  # the file's ``for``
    severity: str = "warning"
    receivers: tuple[str, ...] = ()
    repeat: timedelta | None = None
    group_by: str | None = None
    filters: tuple[tuple[str, str], ...] = ()
    baseline: timedelta | None = None  # a relative rule: the value is current / the span before
    offset: timedelta | None = None  # the window ends this long ago (1d over 1d offset 1d: yesterday)

    @property
    def kind(self) -> Kind:
        return KINDS[self.watch]

    @property
    def unavailable(self) -> str | None:
        """Why this rule cannot be evaluated yet (its kind, or its kind over days); None: it can."""
        return why_unavailable(self.kind, self.window)

    @property
    def window_text(self) -> str:
        """``15m``, ``1d``, ``1d offset 1d`` (yesterday), or ``now``."""
        if not self.window:
            return "now"
        shifted = f" offset {format_duration(self.offset)}" if self.offset else ""
        return format_duration(self.window) + shifted

    def filter(self, name: str) -> str | None:
        return dict(self.filters).get(name)

    def breaches(self, value: float) -> bool:
        t = self.threshold
        return {">": value > t, ">=": value >= t, "<": value < t, "<=": value <= t}[self.comparison]

    @property
    def baseline_text(self) -> str | None:
        return format_duration(self.baseline) if self.baseline else None

    def condition(self) -> str:
        """``tool_error_share > 0.2 over 15m``; a relative rule's ``round_latency_p95 >= 2 x
        baseline over 1h (baseline: the 1d before)``."""
        over = f" over {self.window_text}" if self.window else ""
        if self.baseline:
            return (
                f"{self.watch} {self.comparison} {number(self.threshold)} x baseline{over} "
                f"(baseline: the {self.baseline_text} before)"
            )
        return f"{self.watch} {self.comparison} {number(self.threshold)}{over}"


@dataclass(frozen=True)
class RulesFile:
    path: str
    rules: tuple[Rule, ...]
    receivers: Mapping[str, Receiver]


def load_rules(
    path: str | os.PathLike[str], env: Mapping[str, str] | None = None, *, need_urls: bool = True
) -> RulesFile:
    """The rules of the TOML file at ``path``. ``need_urls``: a receiver whose ``url_env`` is not
    set in ``env`` (default: the process's) is a mistake (what sends needs it; list and check do
    not). Raises RulesError in one line."""
    where = str(path)
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise RulesError(f"{where}: cannot read the rules file: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise RulesError(f"{where}: not UTF-8 text; a rules file is TOML") from None
    except tomllib.TOMLDecodeError as exc:
        raise RulesError(f"{where}: not valid TOML: {exc}") from None
    return parse_rules(data, where, os.environ if env is None else env, need_urls=need_urls)


def parse_rules(
    data: Mapping[str, Any], where: str, env: Mapping[str, str], *, need_urls: bool = True
) -> RulesFile:
    """The rules of a parsed file (see :func:`load_rules`)."""
    unknown = sorted(set(data) - {"rules", "receivers"})
    if unknown:
        raise RulesError(
            f"{where}: unknown table {unknown[0]!r}; a rules file has [[rules]] and [receivers.NAME]"
        )
    raw_receivers = data.get("receivers", {})
    if not isinstance(raw_receivers, dict):
        raise RulesError(f"{where}: receivers must be tables, [receivers.NAME]")
    receivers = {
        name: _receiver(f"{where}: receiver {name!r}", name, body, env, need_urls)
        for name, body in raw_receivers.items()
    }
    raw_rules = data.get("rules", [])
    if not isinstance(raw_rules, list) or not all(isinstance(r, dict) for r in raw_rules):
        raise RulesError(f"{where}: rules must be an array of tables, [[rules]]")
    rules: list[Rule] = []
    for n, body in enumerate(raw_rules, 1):
        name = body.get("name")
        label = f"rule {name!r}" if isinstance(name, str) and name.strip() else f"rule #{n}"
        rule = _rule(f"{where}: {label}", body, receivers)
        if any(r.name == rule.name for r in rules):
            raise RulesError(
                f"{where}: {label}: name: {rule.name!r} is used by another rule; names are unique"
            )
        rules.append(rule)
    return RulesFile(where, tuple(rules), receivers)


def _receiver(at: str, name: str, body: Any, env: Mapping[str, str], need_urls: bool) -> Receiver:
    if not isinstance(body, dict):
        raise RulesError(f"{at}: must be a table of {', '.join(RECEIVER_FIELDS)}")
    _no_unknown(at, body, RECEIVER_FIELDS)
    kind = body.get("kind", "webhook")
    if kind not in RECEIVER_KINDS:
        raise RulesError(f"{at}: kind: {kind!r} is not one of {', '.join(RECEIVER_KINDS)}")
    url_env = body.get("url_env")
    if not isinstance(url_env, str) or not _ENV_NAME.match(url_env):
        raise RulesError(
            f"{at}: url_env: {url_env!r} is not a variable name; the URL (it holds a token) comes "
            'from the environment: url_env = "SLACK_WEBHOOK_URL"'
        )
    url = env.get(url_env) or None
    if url is None and need_urls:
        raise RulesError(f"{at}: url_env: ${url_env} is not set; set it to the receiver's URL")
    if url is not None and not url.startswith(("http://", "https://")):
        raise RulesError(f"{at}: url_env: ${url_env} is not an http(s) URL ({mask_webhook_url(url)})")
    # At most 5 x 10 s plus the backoffs between (0.5 s doubling, under 8 s): well within the
    # job's two minutes (worker/maintenance/cron.py), whatever the receivers do.
    timeout = _duration(at, "timeout", body.get("timeout", "5s"), least=timedelta(milliseconds=100))
    if timeout > MAX_TIMEOUT:
        raise RulesError(f"{at}: timeout: {body['timeout']!r} is longer than {format_duration(MAX_TIMEOUT)}")
    attempts = _integer(at, "attempts", body.get("attempts", 3), least=1, most=MAX_ATTEMPTS)
    return Receiver(name, kind, url_env, url, timeout, attempts)


def _rule(at: str, body: dict[str, Any], receivers: Mapping[str, Receiver]) -> Rule:
    _no_unknown(at, body, RULE_FIELDS)
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        raise RulesError(f"{at}: name: {name!r}; every rule needs a name, a non-empty string")
    watch = body.get("watch")
    if watch not in KINDS:
        raise RulesError(f"{at}: watch: {watch!r} is not one of {', '.join(KINDS)}")
    kind = KINDS[watch]
    window = _window(at, kind, body.get("window"))
    comparison = body.get("comparison", kind.default_comparison)
    if comparison not in COMPARISONS:
        raise RulesError(f"{at}: comparison: {comparison!r} is not one of {' '.join(COMPARISONS)}")
    baseline = _earlier(at, "baseline", kind, window, body)
    offset = _earlier(at, "offset", kind, window, body)
    threshold = _threshold(at, kind, body.get("threshold", kind.default_threshold), baseline is not None)
    severity = body.get("severity", "warning")
    if severity not in SEVERITIES:
        raise RulesError(f"{at}: severity: {severity!r} is not one of {', '.join(SEVERITIES)}")
    listed = body.get("receivers", [])
    if not isinstance(listed, list) or not all(isinstance(r, str) for r in listed):
        raise RulesError(f'{at}: receivers: {listed!r} is not a list of receiver names, e.g. ["slack"]')
    for r in listed:
        if r not in receivers:
            known = ", ".join(receivers) or "none defined"
            raise RulesError(f"{at}: receivers: {r!r} is not a receiver of this file (receivers: {known})")
    repeat = body.get("repeat")
    return Rule(
        name=name,
        watch=watch,
        window=window,
        comparison=comparison,
        threshold=threshold,
        min_samples=_integer(at, "min_samples", body.get("min_samples", 1), least=0, most=10**12),
        hold=_duration(at, "for", body.get("for", "0s")),
        severity=severity,
        receivers=tuple(dict.fromkeys(listed)),
        repeat=None if repeat is None else _duration(at, "repeat", repeat, least=timedelta(minutes=1)),
        group_by=_group_by(at, kind, body.get("group_by")),
        filters=tuple((f, _filter(at, kind, f, body[f])) for f in FILTERS if f in body),
        baseline=baseline,
        offset=offset,
    )


def _no_unknown(at: str, body: Mapping[str, Any], known: tuple[str, ...]) -> None:
    for key in body:
        if key not in known:
            raise RulesError(f"{at}: {key}: unknown field; the fields are {', '.join(known)}")


def _window(at: str, kind: Kind, value: Any) -> timedelta | None:
    if not kind.needs_window:
        if value is not None:
            raise RulesError(f"{at}: window: {kind.name} is read as it is now; leave the window out")
        return None
    if value is None:
        raise RulesError(f'{at}: window: missing; {kind.name} is measured over a window, e.g. window = "15m"')
    window = _duration(at, "window", value, least=timedelta(minutes=1))
    if window >= timedelta(days=1) and window % timedelta(days=1):
        raise RulesError(
            f"{at}: window: {value!r} is longer than a day but not whole days; "
            "windows of days are UTC dates (1d = today so far), write e.g. 1d or 7d"
        )
    return window


def _duration(at: str, field_name: str, value: Any, least: timedelta = timedelta(0)) -> timedelta:
    if not isinstance(value, str):
        raise RulesError(f'{at}: {field_name}: {value!r} is not a duration; write it as a string, e.g. "15m"')
    try:
        parsed = parse_duration(value, name=field_name)
    except ValueError as exc:
        raise RulesError(f"{at}: {exc}") from None
    if parsed < least:
        raise RulesError(f"{at}: {field_name}: {value!r} is shorter than {format_duration(least)}")
    return parsed


def _integer(at: str, field_name: str, value: Any, least: int, most: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not least <= value <= most:
        raise RulesError(f"{at}: {field_name}: {value!r} is not a whole number from {least} to {most}")
    return value


def _threshold(at: str, kind: Kind, value: Any, relative: bool) -> float:
    if value is None:
        raise RulesError(f"{at}: threshold: missing; {kind.name} needs a number to compare with")
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise RulesError(f"{at}: threshold: {value!r} is not a number")
    if relative:
        if value <= 0:
            raise RulesError(
                f"{at}: threshold: {value!r} is not a positive ratio; with a baseline the value is "
                "the window's over the baseline's (2 = doubled, 0.5 = halved)"
            )
        return float(value)
    if kind.share and not 0 <= value <= 1:
        raise RulesError(
            f"{at}: threshold: {value!r} is not a share; {kind.name} is from 0 to 1 (0.2 = 20 %)"
        )
    return float(value)


def _earlier(
    at: str, name: str, kind: Kind, window: timedelta | None, body: Mapping[str, Any]
) -> timedelta | None:
    """A span before the window: ``baseline`` (what the value is divided by: the span just before
    the window) or ``offset`` (how long ago the window ends). Whole UTC dates for a window of days;
    under a day, at most a day."""
    value = body.get(name)
    if value is None:
        return None
    if not kind.comparable:
        why = "is read as it is now" if kind.source == "pipeline" else "counts starts up to a cap"
        raise RulesError(
            f"{at}: {name}: {kind.name} {why} and has no {name}; only measured kinds take one "
            f"({', '.join(k.name for k in KINDS.values() if k.comparable)})"
        )
    span = _duration(at, name, value, least=timedelta(minutes=1))
    assert window is not None  # every comparable kind needs a window
    if window >= DAY and span % DAY:
        raise RulesError(
            f"{at}: {name}: {value!r} is not whole days; a window of days ({format_duration(window)}) "
            "is UTC dates, and so is what comes before it: write e.g. 1d or 7d"
        )
    if window < DAY and span > DAY:
        raise RulesError(
            f"{at}: {name}: {value!r} is longer than a day; a window under a day reads the base "
            f"tables, and so does what comes before it: at most 1d (or a window of days, e.g. 1d)"
        )
    named = {f for f in FILTERS if f in body} | {body.get("group_by")}
    if kind.quantile is not None and "provider" in named:
        raise RulesError(
            f"{at}: {name}: {kind.name} by provider has no latency histogram to read it from "
            "(they keep the model); filter or group by model"
        )
    return span


def _group_by(at: str, kind: Kind, value: Any) -> str | None:
    if value is None:
        return None
    if value in kind.later:
        raise RulesError(
            f"{at}: group_by: {value!r}: the tables have no {value} column yet; group by "
            f"{' or '.join(kind.filters) or 'nothing'} for now"
        )
    if value not in kind.filters:
        can = " or ".join(kind.filters) or "nothing"
        raise RulesError(f"{at}: group_by: {value!r}: {kind.name} can be grouped by {can}")
    return str(value)


def _filter(at: str, kind: Kind, name: str, value: Any) -> str:
    if name in kind.later:
        raise RulesError(
            f"{at}: {name}: the tables have no {name} column yet; this filter works once they do"
        )
    if name not in kind.filters:
        can = ", ".join(kind.filters) or "no filter"
        raise RulesError(f"{at}: {name}: {kind.name} takes {can}")
    if not isinstance(value, str) or not value or "\x00" in value:
        raise RulesError(f"{at}: {name}: {value!r} is not a non-empty string")
    return value
