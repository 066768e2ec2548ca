"""Every setting of the worker side, in one frozen object built from the environment.

CLI flags mirror these variables (worker/cli.py says which in --help); a flag beats the variable.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

from contract.durations import format_duration, parse_duration
from contract.fields import DEFAULT_MAX_EVENT_BYTES
from contract.keys import DEFAULT_GROUP, DEFAULT_STREAM, Keys

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"

#: Shortest settings that cannot destroy live data: a zero retention would prune running
#: sessions' rounds, a zero grace would close every session without a heartbeat at once, and a
#: zero dead-letter retention would drop what an operator has not looked at yet.
MINIMUMS = {
    "retention": ("METRICS_RETENTION (--older-than)", timedelta(days=1)),
    "reconcile_grace": ("METRICS_RECONCILE_GRACE (--grace)", timedelta(minutes=1)),
    "dead_letter_retention": ("METRICS_DEAD_LETTER_RETENTION (--dead-letter-retention)", timedelta(days=1)),
}


def _env_int(env: dict[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{name}: {raw!r} is not an integer") from None


def _source(name: str) -> str:
    """Where a setting comes from, as a person sets it: ``METRICS_BATCH_SIZE (--batch-size)``."""
    return f"METRICS_{name.upper()} (--{name.replace('_', '-')})"


def default_consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


@dataclass(frozen=True)
class Settings:
    # Out of the repr, so a logged or printed Settings never shows a password.
    database_url: str = field(default=DEFAULT_DATABASE_URL, repr=False)
    redis_url: str = field(default=DEFAULT_REDIS_URL, repr=False)
    stream: str = DEFAULT_STREAM  # METRICS_STREAM
    shards: int = 1  # METRICS_SHARDS
    group: str = DEFAULT_GROUP  # METRICS_GROUP
    consumer: str = field(default_factory=default_consumer_name)  # METRICS_CONSUMER
    batch_size: int = 1000  # METRICS_BATCH_SIZE
    block_ms: int = 2000  # METRICS_BLOCK_MS
    claim_idle_ms: int = 30_000  # METRICS_CLAIM_IDLE_MS
    max_deliveries: int = 5  # METRICS_MAX_DELIVERIES: then dead-lettered
    max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES  # METRICS_MAX_EVENT_BYTES: larger is dead-lettered unread
    metrics_port: int | None = None  # METRICS_PORT (Prometheus); unset = no endpoint
    consumer_idle_ms: int = (
        3_600_000  # METRICS_CONSUMER_IDLE_MS: idle consumers with nothing pending are removed
    )
    trim_every_s: float = 30.0  # METRICS_TRIM_EVERY_S: how often to trim acknowledged entries
    reconcile_grace: timedelta = timedelta(minutes=10)  # METRICS_RECONCILE_GRACE
    retention: timedelta = timedelta(days=90)  # METRICS_RETENTION
    dedupe_window: timedelta = timedelta(days=14)  # METRICS_DEDUPE_WINDOW
    dead_letter_retention: timedelta = timedelta(days=30)  # METRICS_DEAD_LETTER_RETENTION

    @property
    def keys(self) -> Keys:
        return Keys(stream=self.stream, shards=self.shards)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides: Any) -> Settings:
        e = dict(os.environ if env is None else env)
        values: dict[str, Any] = {
            "database_url": e.get("DATABASE_URL") or DEFAULT_DATABASE_URL,
            "redis_url": e.get("REDIS_URL") or DEFAULT_REDIS_URL,
            "stream": e.get("METRICS_STREAM") or DEFAULT_STREAM,
            "shards": _env_int(e, "METRICS_SHARDS", 1),
            "group": e.get("METRICS_GROUP") or DEFAULT_GROUP,
            "batch_size": _env_int(e, "METRICS_BATCH_SIZE", 1000),
            "block_ms": _env_int(e, "METRICS_BLOCK_MS", 2000),
            "claim_idle_ms": _env_int(e, "METRICS_CLAIM_IDLE_MS", 30_000),
            "max_deliveries": _env_int(e, "METRICS_MAX_DELIVERIES", 5),
            "max_event_bytes": _env_int(e, "METRICS_MAX_EVENT_BYTES", DEFAULT_MAX_EVENT_BYTES),
            "consumer_idle_ms": _env_int(e, "METRICS_CONSUMER_IDLE_MS", 3_600_000),
        }
        if e.get("METRICS_CONSUMER"):
            values["consumer"] = e["METRICS_CONSUMER"]
        if e.get("METRICS_PORT"):
            values["metrics_port"] = _env_int(e, "METRICS_PORT", 0)
        for name, var in (
            ("reconcile_grace", "METRICS_RECONCILE_GRACE"),
            ("retention", "METRICS_RETENTION"),
            ("dedupe_window", "METRICS_DEDUPE_WINDOW"),
            ("dead_letter_retention", "METRICS_DEAD_LETTER_RETENTION"),
        ):
            if e.get(var):
                values[name] = parse_duration(e[var], name=var)
        values.update({k: v for k, v in overrides.items() if v is not None})
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        for name in ("batch_size", "shards", "max_deliveries", "max_event_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{_source(name)}: must be at least 1, got {getattr(self, name)}")
        for name in ("block_ms", "claim_idle_ms"):
            if getattr(self, name) < 0:
                raise ValueError(f"{_source(name)}: must not be negative, got {getattr(self, name)}")
        for name, (variable, least) in MINIMUMS.items():
            if getattr(self, name) < least:
                raise ValueError(
                    f"{variable}: {format_duration(getattr(self, name))} is shorter than the minimum, "
                    f"{format_duration(least)}: shorter would touch data that is still live"
                )

    def with_(self, **changes: Any) -> Settings:
        """A copy with ``changes`` (e.g. from CLI flags), validated like the environment is."""
        changed = replace(self, **changes)
        changed.validate()
        return changed
