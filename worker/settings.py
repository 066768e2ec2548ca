"""The worker side's settings, one frozen object per concern, each read from the environment alone.

A process builds only the objects it uses, so it reads and checks only their variables:
``metrics-api`` never looks at ``METRICS_BATCH_SIZE``, ``prune`` refuses a short
``METRICS_DEDUPE_WINDOW`` before it connects. ``from_env`` takes the command's flags too (a flag
beats its variable); an error names the variable, and the flag when the command has one.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Collection, Mapping
from dataclasses import Field, dataclass, field, fields, replace
from datetime import timedelta
from typing import Any, Self

from contract.durations import format_duration, parse_duration, parse_ms
from contract.fields import DEFAULT_MAX_EVENT_BYTES
from contract.keys import DEFAULT_GROUP, DEFAULT_STREAM, Keys

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_CONNECT_TIMEOUT = timedelta(seconds=5)


def _int(text: str, variable: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{variable}: {text!r} is not an integer") from None


def _text(text: str, variable: str) -> str:
    return text


def _duration(text: str, variable: str) -> timedelta:
    return parse_duration(text, name=variable)


def _ms(text: str, variable: str) -> int:
    return parse_ms(text, name=variable)


@dataclass(frozen=True)
class Var:
    """Where a setting comes from: its variable, how its text reads, its flag (where a command has
    one), the least value that makes sense and why less would not."""

    variable: str
    read: Callable[[str, str], Any]
    flag: str  # "" when no command has one
    least: Any = None
    why: str = ""
    shape: Callable[[Any], str | None] | None = None  # what is wrong with a value, if anything


def read_from(*var: Any, **more: Any) -> Any:
    """A dataclass field's metadata: the field is read as :class:`Var` ``(*var, **more)`` says."""
    return {"var": Var(*var, **more)}


def _var(f: Field[Any]) -> Var | None:
    return f.metadata.get("var")


def _database_url(url: str) -> str | None:
    """A URL libpq would misread (``127.0.0.1:5432/test`` is neither a URL nor ``key=value``)."""
    if "://" in url or "=" in url:
        return None
    return f"{url!r} is not a PostgreSQL URL; write postgresql://USER@HOST:PORT/DATABASE"


def _redis_url(url: str) -> str | None:
    if url.startswith(("redis://", "rediss://", "unix://")):
        return None
    return f"{url!r} is not a Redis URL; write redis://HOST:PORT/DB (rediss:// for TLS)"


_LIVE = "shorter would touch data that is still live"


@dataclass(frozen=True)
class Connections:
    """Where the servers are, and how long reaching one may take: what every command uses."""

    database_url: str = field(
        default=DEFAULT_DATABASE_URL,
        repr=False,
        metadata=read_from("DATABASE_URL", _text, "--database-url", shape=_database_url),
    )
    redis_url: str = field(
        default=DEFAULT_REDIS_URL,
        repr=False,
        metadata=read_from("REDIS_URL", _text, "--redis-url", shape=_redis_url),
    )
    stream: str = field(default=DEFAULT_STREAM, metadata=read_from("METRICS_STREAM", _text, "--stream"))
    shards: int = field(default=1, metadata=read_from("METRICS_SHARDS", _int, "--shards", 1))
    group: str = field(default=DEFAULT_GROUP, metadata=read_from("METRICS_GROUP", _text, "--group"))
    connect_timeout: timedelta = field(
        default=DEFAULT_CONNECT_TIMEOUT,
        metadata=read_from("METRICS_CONNECT_TIMEOUT", _duration, "--connect-timeout", timedelta(seconds=1)),
    )

    @property
    def keys(self) -> Keys:
        return Keys(stream=self.stream, shards=self.shards)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **flags: Any) -> Self:
        """The settings from ``env`` (default: the process's), each beaten by its entry in ``flags``
        unless that is None. ``flags`` holds the command's flags by setting name, given or not, so
        that errors name only flags that exist. Raises ValueError naming the variable."""
        e = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in fields(cls):
            var = _var(f)
            if var is None:
                continue
            if flags.get(f.name) is not None:
                values[f.name] = flags[f.name]
            elif e.get(var.variable):
                values[f.name] = var.read(e[var.variable], var.variable)
        settings = cls(**values)
        settings.check(flags)
        return settings

    def check(self, flags: Collection[str] = ()) -> None:
        """Raises ValueError for the first setting below its least, naming where it comes from."""
        for f in fields(self):
            var = _var(f)
            value = getattr(self, f.name)
            if var is None or value is None:
                continue
            where = f"{var.variable} ({var.flag})" if var.flag and f.name in flags else var.variable
            wrong = var.shape(value) if var.shape else None
            if wrong:
                raise ValueError(f"{where}: {wrong}")
            if var.least is None or value >= var.least:
                continue
            if isinstance(value, timedelta):
                raise ValueError(
                    f"{where}: {format_duration(value)} is shorter than the minimum, "
                    f"{format_duration(var.least)}" + (f": {var.why}" if var.why else "")
                )
            raise ValueError(f"{where}: must be at least {var.least}, got {value}")

    def with_(self, **changes: Any) -> Self:
        """A copy with ``changes``, checked like the environment is."""
        changed = replace(self, **changes)
        changed.check(changes)
        return changed


def default_consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


@dataclass(frozen=True)
class WorkerSettings(Connections):
    """What ``metrics-worker run`` uses besides the connections: batches, waits, limits."""

    consumer: str = field(
        default_factory=default_consumer_name,
        metadata=read_from("METRICS_CONSUMER", _text, "--consumer"),
    )
    batch_size: int = field(default=1000, metadata=read_from("METRICS_BATCH_SIZE", _int, "--batch-size", 1))
    block_ms: int = field(default=2000, metadata=read_from("METRICS_BLOCK_MS", _ms, "--block-ms", 0))
    claim_idle_ms: int = field(
        default=30_000, metadata=read_from("METRICS_CLAIM_IDLE_MS", _ms, "--claim-idle-ms", 0)
    )
    #: Then isolated and, failing again, dead-lettered.
    max_deliveries: int = field(
        default=5, metadata=read_from("METRICS_MAX_DELIVERIES", _int, "--max-deliveries", 1)
    )
    #: Larger entries are dead-lettered unread.
    max_event_bytes: int = field(
        default=DEFAULT_MAX_EVENT_BYTES,
        metadata=read_from("METRICS_MAX_EVENT_BYTES", _int, "--max-event-bytes", 1),
    )
    #: The Prometheus endpoint's port; None, no endpoint.
    metrics_port: int | None = field(
        default=None, metadata=read_from("METRICS_PORT", _int, "--metrics-port", 1)
    )
    #: Idle consumers with nothing pending are removed after this.
    consumer_idle_ms: int = field(
        default=3_600_000, metadata=read_from("METRICS_CONSUMER_IDLE_MS", _ms, "", 0)
    )
    #: Own prices (TOML, worker/engine/price_file.py) over genai-prices' bundled list; None: none.
    prices_file: str | None = field(
        default=None, metadata=read_from("METRICS_PRICES_FILE", _text, "--prices-file")
    )
    trim_every_s: float = 30.0  # how often to trim acknowledged entries (not a setting people change)


@dataclass(frozen=True)
class RepriceSettings(Connections):
    """What ``metrics-worker reprice`` uses besides the database: the prices file the workers use."""

    prices_file: str | None = field(
        default=None, metadata=read_from("METRICS_PRICES_FILE", _text, "--prices-file")
    )


@dataclass(frozen=True)
class ReconcileSettings(Connections):
    """What ``reconcile`` uses besides the connections."""

    #: Shorter would close every session without a heartbeat at once.
    reconcile_grace: timedelta = field(
        default=timedelta(minutes=10),
        metadata=read_from("METRICS_RECONCILE_GRACE", _duration, "--grace", timedelta(minutes=1), _LIVE),
    )


@dataclass(frozen=True)
class PruneSettings(Connections):
    """What ``prune`` uses besides the connections: how long each kind of record is kept."""

    #: Shorter would prune running sessions' rounds.
    retention: timedelta = field(
        default=timedelta(days=90),
        metadata=read_from("METRICS_RETENTION", _duration, "--older-than", timedelta(days=1), _LIVE),
    )
    #: A redelivery can come this late (a worker outage): shorter would count a counter event twice.
    dedupe_window: timedelta = field(
        default=timedelta(days=14),
        metadata=read_from(
            "METRICS_DEDUPE_WINDOW",
            _duration,
            "--dedupe-window",
            timedelta(days=1),
            "a redelivered round.compressed or sync.mismatch would be counted twice; use e.g. 14d",
        ),
    )
    #: Shorter would drop what an operator has not looked at yet.
    dead_letter_retention: timedelta = field(
        default=timedelta(days=30),
        metadata=read_from(
            "METRICS_DEAD_LETTER_RETENTION", _duration, "--dead-letter-retention", timedelta(days=1), _LIVE
        ),
    )


@dataclass(frozen=True)
class AlertSettings(Connections):
    """What the alerts job and ``metrics-worker alerts`` use besides the connections."""

    #: The rules file (TOML; README, Alerts); None: no alerts.
    alerts_file: str | None = field(default=None, metadata=read_from("METRICS_ALERTS_FILE", _text, "--file"))
