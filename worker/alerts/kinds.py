"""What a rule can watch: each kind's source, filters, groupings, defaults.

A filter or grouping is accepted only where its column exists today. ``provider`` and ``user``
are names the file may use already: a kind that will read them lists them in ``later`` and the
parser answers that the column is not there yet, instead of "unknown field". Kinds whose data
has not landed (cost; latency percentiles over days, which need the latency roll-ups; time to
first token) are accepted by the parser and answer "not available" when evaluated, never a
made-up value. Round latency over windows under a day is computed from the rounds themselves.
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
    later: tuple[str, ...] = ()  # filter names that need a column not there yet
    needs_window: bool = True
    share: bool = False  # a share in [0, 1]: the threshold must be one
    default_comparison: str = ">"
    default_threshold: float | None = None
    unavailable: str = ""  # why it cannot be evaluated yet
    days_unavailable: str = ""  # why windows of days cannot be evaluated yet
    quantile: float | None = None  # a percentile kind's


_LATER_USAGE = ("provider", "user")
_NOT_YET_COST = "not available until cost in USD lands (issue 23: cost and latency from the roll-ups)"
_NOT_YET_TTFT = "not available until time to first token is stored (contract v1's optional fields)"
_DAYS_OF_LATENCY = (
    "not available over days until the latency roll-ups land (issue 23); windows under a day read the rounds"
)

KINDS: dict[str, Kind] = {
    k.name: k
    for k in (
        Kind(
            "round_error_share",
            "tables",
            "share of finished rounds that ended in error",
            ("model",),
            _LATER_USAGE,
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
            ("model", "endpoint"),
            _LATER_USAGE,
            share=True,
        ),
        Kind(
            "session_error_share",
            "tables",
            "share of ended sessions that ended in error",
            ("model",),
            _LATER_USAGE,
            share=True,
        ),
        Kind("tokens", "tables", "tokens of the rounds started in the window", ("model",), _LATER_USAGE),
        Kind(
            "silence",
            "tables",
            "sessions, rounds, tool calls and forwards started in the window (up to 1000 each)",
            ("model",),
            _LATER_USAGE,
            default_comparison="<",
            default_threshold=1,
        ),
        Kind("backlog", "pipeline", "entries waiting: undelivered plus pending", needs_window=False),
        Kind("lag_seconds", "pipeline", "age of the oldest entry waiting, seconds", needs_window=False),
        Kind("dead_letters", "pipeline", "dead letters kept (not replayed or removed)", needs_window=False),
        Kind("cost_usd", "", "cost in USD", ("model",), _LATER_USAGE, unavailable=_NOT_YET_COST),
        Kind(
            "round_latency_p95",
            "tables",
            "p95 of the finished rounds' durations (started to completed), ms",
            ("model",),
            _LATER_USAGE,
            days_unavailable=_DAYS_OF_LATENCY,
            quantile=0.95,
        ),
        Kind(
            "round_latency_p99",
            "tables",
            "p99 of the finished rounds' durations (started to completed), ms",
            ("model",),
            _LATER_USAGE,
            days_unavailable=_DAYS_OF_LATENCY,
            quantile=0.99,
        ),
        Kind(
            "time_to_first_token_p95",
            "",
            "p95 time to first token, ms",
            ("model",),
            _LATER_USAGE,
            unavailable=_NOT_YET_TTFT,
        ),
    )
}


def why_unavailable(kind: Kind, window: timedelta | None) -> str | None:
    """Why a rule of ``kind`` over ``window`` cannot be evaluated yet; None when it can."""
    if kind.unavailable:
        return f"{kind.name} is {kind.unavailable}"
    if kind.days_unavailable and window is not None and window >= timedelta(days=1):
        return f"{kind.name} is {kind.days_unavailable}"
    return None
