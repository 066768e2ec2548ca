"""What a rule can watch: each kind's source, filters, groupings, defaults.

A filter or grouping is accepted only where its column is: ``provider`` on rounds and forwards,
``user`` on sessions, and on the rounds' cost through their session (contract v1's optional
fields; rows that did not report one match no filter and group under ''). A filter name a kind
cannot read is refused naming those it takes. Round latency and time to first token are computed
from the rounds over windows under a day, from the hourly latency histograms over days
(worker/alerts/measure.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

#: Every filter name a rule may carry (and group by), whether or not a kind can use it today.
FILTERS = ("model", "provider", "user", "tool", "endpoint")


@dataclass(frozen=True)
class Kind:
    name: str
    source: str  # "tables", "pipeline" or "" (not available)
    describe: str  # what the value is, for list and messages
    filters: tuple[str, ...] = ()
    later: tuple[str, ...] = ()  # filter names that need a column not there yet (none today)
    needs_window: bool = True
    share: bool = False  # a share in [0, 1]: the threshold must be one
    default_comparison: str = ">"
    default_threshold: float | None = None
    unavailable: str = ""  # why it cannot be evaluated yet (a kind whose data has not landed)
    quantile: float | None = None  # a percentile kind's

    @property
    def comparable(self) -> bool:
        """Whether a rule of this kind may take a ``baseline``: the measured kinds (a count of
        silence, capped at 1000 a table, and the pipeline's gauges, read as they are now, have
        no earlier span to be compared with)."""
        return self.source == "tables" and self.name != "silence"


KINDS: dict[str, Kind] = {
    k.name: k
    for k in (
        Kind(
            "round_error_share",
            "tables",
            "share of finished rounds that ended in error",
            ("model", "provider"),
            share=True,
        ),
        Kind(
            "tool_error_share",
            "tables",
            "share of finished tool calls that failed",
            ("tool",),
            share=True,
        ),
        Kind(
            "forward_error_share",
            "tables",
            "share of finished forwarded requests that failed or timed out",
            ("model", "endpoint", "provider"),
            share=True,
        ),
        Kind(
            "session_error_share",
            "tables",
            "share of ended sessions that ended in error",
            ("model", "user"),
            share=True,
        ),
        Kind("tokens", "tables", "tokens of the rounds started in the window", ("model", "provider")),
        Kind(
            "silence",
            "tables",
            "sessions, rounds, tool calls and forwards started in the window (up to 1000 each)",
            ("model", "provider", "user"),
            default_comparison="<",
            default_threshold=1,
        ),
        Kind(
            "backlog",
            "pipeline",
            "entries waiting: undelivered, pending and unrouted (status view)",
            needs_window=False,
        ),
        Kind("lag_seconds", "pipeline", "age of the oldest entry waiting, seconds", needs_window=False),
        Kind("dead_letters", "pipeline", "dead letters kept (not replayed or removed)", needs_window=False),
        Kind(
            "cost_usd",
            "tables",
            "cost in USD of the priced rounds started in the window",
            ("model", "provider", "user"),
        ),
        Kind(
            "round_latency_p95",
            "tables",
            "p95 of the finished rounds' durations (started to completed), ms",
            ("model", "provider"),
            quantile=0.95,
        ),
        Kind(
            "round_latency_p99",
            "tables",
            "p99 of the finished rounds' durations (started to completed), ms",
            ("model", "provider"),
            quantile=0.99,
        ),
        Kind(
            "time_to_first_token_p95",
            "tables",
            "p95 time to first token of the rounds that reported one, ms",
            ("model", "provider"),
            quantile=0.95,
        ),
    )
}


def why_unavailable(kind: Kind, window: timedelta | None) -> str | None:
    """Why a rule of ``kind`` over ``window`` cannot be evaluated yet; None when it can."""
    if kind.unavailable:
        return f"{kind.name} is {kind.unavailable}"
    return None
