"""Every setting of the producer in one frozen object, built from arguments or the environment."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from redis.connection import parse_url

from contract.keys import DEFAULT_STREAM, Keys

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


def default_spool_dir() -> Path:
    """``$XDG_STATE_HOME/metrics-producer/spool`` (state, not cache: it holds undelivered events)."""
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "metrics-producer" / "spool"


#: Settings field -> environment variable. Documented in ``metrics-producer --help``.
ENV_VARS: dict[str, str] = {
    "redis_url": "REDIS_URL",
    "stream": "METRICS_STREAM",
    "shards": "METRICS_SHARDS",
    "spool_dir": "METRICS_SPOOL_DIR",
    "spool_max_bytes": "METRICS_SPOOL_MAX_BYTES",
    "queue_size": "METRICS_QUEUE_SIZE",
    "batch_size": "METRICS_BATCH_SIZE",
    "socket_timeout": "METRICS_SOCKET_TIMEOUT",
    "heartbeat_interval": "METRICS_HEARTBEAT_INTERVAL",
    "heartbeat_ttl": "METRICS_HEARTBEAT_TTL",
    "wait_replicas": "METRICS_WAIT_REPLICAS",
    "wait_timeout_ms": "METRICS_WAIT_TIMEOUT_MS",
}


@dataclass(frozen=True)
class ProducerSettings:
    """How a :class:`~producer.publisher.Publisher` reaches Redis and where it spools."""

    redis_url: str = field(default=DEFAULT_REDIS_URL, repr=False)  # a repr never shows a password
    stream: str = DEFAULT_STREAM
    shards: int = 1
    spool_dir: Path = field(default_factory=default_spool_dir)
    #: Undelivered bytes kept on disk; beyond it the oldest segment (1/8 of this) is dropped.
    spool_max_bytes: int = 128 * 1024 * 1024
    spool_fsync: bool = False
    #: Events held in memory; a call finding it full drops its event (counted).
    queue_size: int = 10_000
    batch_size: int = 1_000
    socket_timeout: float = 1.0
    connect_timeout: float = 1.0
    retry_initial: float = 0.1
    retry_max: float = 5.0
    heartbeat_interval: float = 5.0
    heartbeat_ttl: float = 30.0
    #: How long a batch's sequence marker lives in Redis: a retry within it is never applied twice.
    dedup_ttl: int = 24 * 3600
    #: Keep each batch in the spool until WAIT confirms this many replicas have it (0: off). Redis
    #: replicates asynchronously: a write the master acknowledged can vanish in a failover.
    wait_replicas: int = 0
    wait_timeout_ms: int = 500  # below socket_timeout: the reply must come before the socket gives up
    #: close() at interpreter exit waits at most this long.
    exit_timeout: float = 2.0
    #: Completed session ids remembered to drop late calls for them.
    remember_completed: int = 100_000

    def __post_init__(self) -> None:
        rules = {
            "shards": (self.shards >= 1, "at least 1"),
            "queue_size": (self.queue_size >= 1, "at least 1"),
            "batch_size": (self.batch_size >= 1, "at least 1"),
            "spool_max_bytes": (self.spool_max_bytes >= 4096, "at least 4096"),
            "socket_timeout": (self.socket_timeout > 0, "above 0"),
            "connect_timeout": (self.connect_timeout > 0, "above 0"),
            "heartbeat_interval": (self.heartbeat_interval > 0, "above 0"),
            "heartbeat_ttl": (self.heartbeat_ttl > self.heartbeat_interval, "above heartbeat_interval"),
            "dedup_ttl": (self.dedup_ttl >= 1, "at least 1"),
            "wait_replicas": (self.wait_replicas >= 0, "at least 0"),
            "wait_timeout_ms": (
                self.wait_replicas == 0 or 0 < self.wait_timeout_ms < self.socket_timeout * 1000,
                "above 0 and below socket_timeout (in ms) with wait_replicas",
            ),
        }
        for name, (ok, rule) in rules.items():
            if not ok:
                where = f"{ENV_VARS[name]} ({name})" if name in ENV_VARS else name
                raise ValueError(f"{where}: must be {rule}, got {getattr(self, name)!r}")
        try:
            parse_url(self.redis_url)  # type: ignore[no-untyped-call]
        except ValueError as exc:
            raise ValueError(f"redis_url: {exc}") from None
        object.__setattr__(self, "spool_dir", Path(self.spool_dir))

    @property
    def keys(self) -> Keys:
        return Keys(stream=self.stream, shards=self.shards)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides: Any) -> ProducerSettings:
        """Settings from the environment (see :data:`ENV_VARS`); ``overrides`` that are not None win."""
        env = dict(os.environ) if env is None else env
        types = {f.name: f.type for f in fields(cls)}
        values: dict[str, Any] = {}
        for name, var in ENV_VARS.items():
            raw = env.get(var)
            if raw:
                values[name] = _parse(name, var, raw, types[name])
        values.update({k: v for k, v in overrides.items() if v is not None})
        return replace(cls(), **values)


def _parse(name: str, var: str, raw: str, kind: Any) -> Any:
    try:
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind == "Path":
            return Path(raw)
        return raw
    except ValueError:
        raise ValueError(f"{var}: cannot read {raw!r} as {kind} for {name}; fix or unset it") from None
