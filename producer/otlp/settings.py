"""Every setting of ``metrics-otlp`` in one frozen object, from its flags and the environment.

Redis, the stream and the shards are the producer's own settings (producer/settings.py: the same
``REDIS_URL``, ``METRICS_STREAM``, ``METRICS_SHARDS``, ``METRICS_SOCKET_TIMEOUT``, ...); what is
the receiver's own is below, each with its variable (:data:`ENV_VARS`). A flag wins over its
variable.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from contract.keys import DEFAULT_GROUP
from producer.settings import ProducerSettings

DEFAULT_PORT = 4318  # OTLP/HTTP's port

#: Settings field -> environment variable (the receiver's own; Redis and the stream: producer/settings.py).
ENV_VARS: dict[str, str] = {
    "max_body": "METRICS_OTLP_MAX_BODY",
    "max_backlog": "METRICS_OTLP_MAX_BACKLOG",
    "max_inflight": "METRICS_OTLP_MAX_INFLIGHT",
    "max_inflight_bytes": "METRICS_OTLP_MAX_INFLIGHT_BYTES",
    "publish_timeout": "METRICS_OTLP_PUBLISH_TIMEOUT",
    "group": "METRICS_GROUP",
}

INGEST_TOKENS_VARIABLE = "METRICS_INGEST_TOKENS"
INGEST_TOKENS_FILE_VARIABLE = "METRICS_INGEST_TOKENS_FILE"


@dataclass(frozen=True)
class OtlpSettings:
    """How the receiver listens, what it accepts, and when it pushes back."""

    producer: ProducerSettings = field(default_factory=ProducerSettings)
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    #: A request body's bytes after decompression; beyond: 413.
    max_body: int = 64 * 1024 * 1024
    #: Entries waiting for the workers (undelivered to the group, all shards); beyond: 503. 0: no bound.
    max_backlog: int = 1_000_000
    #: Requests being read, decoded, mapped or published at once; one more: 503.
    max_inflight: int = 64
    #: Body bytes (decompressed) held by those requests together; beyond: 503.
    max_inflight_bytes: int = 256 * 1024 * 1024
    #: How long an ambiguous send is retried (same token and sequence) before the answer is 503.
    publish_timeout: float = 5.0
    #: The workers' consumer group, whose lag is the backlog.
    group: str = DEFAULT_GROUP

    def __post_init__(self) -> None:
        rules = {
            "port": (0 <= self.port < 65536, "a port (1 to 65535, 0 for any free one)"),
            "max_body": (self.max_body >= 1024, "at least 1024"),
            "max_backlog": (self.max_backlog >= 0, "at least 0 (0: no bound)"),
            "max_inflight": (self.max_inflight >= 1, "at least 1"),
            "max_inflight_bytes": (self.max_inflight_bytes >= self.max_body, "at least max_body"),
            "publish_timeout": (self.publish_timeout > 0, "above 0"),
            "group": (bool(self.group), "a name"),
        }
        for name, (ok, rule) in rules.items():
            if not ok:
                where = f"{ENV_VARS[name]} ({name})" if name in ENV_VARS else name
                raise ValueError(f"{where}: must be {rule}, got {getattr(self, name)!r}")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> OtlpSettings:
        """Settings from the environment (:data:`ENV_VARS` and the producer's); ``overrides`` that
        are not None win (the producer's by their names: redis_url, stream, shards)."""
        env = dict(os.environ) if env is None else dict(env)
        own = {f.name: f.type for f in fields(cls) if f.name != "producer"}
        values: dict[str, Any] = {}
        for name, var in ENV_VARS.items():
            raw = env.get(var)
            if raw:
                values[name] = _parse(name, var, raw, own[name])
        given = {k: v for k, v in overrides.items() if v is not None}
        producer_overrides = {k: given.pop(k) for k in list(given) if k not in own}
        values.update(given)
        values["producer"] = ProducerSettings.from_env(env, **producer_overrides)
        return replace(cls(), **values)


def _parse(name: str, var: str, raw: str, kind: Any) -> Any:
    try:
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        return raw
    except ValueError:
        raise ValueError(f"{var}: cannot read {raw!r} as {kind} for {name}; fix or unset it") from None
