"""What the latency reads show as tables: percentiles in milliseconds, by name or by UTC hour.

Split from grids.py (whose columns and drop order it keeps) when cost and latency met there."""

from __future__ import annotations

from typing import Any

from worker.read.grids import _TOKENS, _tokens
from worker.read.models import HourlySeries, Latency, Percentiles
from worker.tables import Column, Grid


def _ms(p: Percentiles, which: tuple[str, ...]) -> tuple[Any, ...]:
    """The count, then each percentile in ms to 0.1 ms (empty when nothing was measured)."""
    values = (getattr(p, w) for w in which)
    return (p.count, *("" if v is None else round(v, 1) for v in values))


def _percentile_columns(prefix: str, which: tuple[str, ...], drop: int | None) -> tuple[Column, ...]:
    return (
        Column(f"{prefix}n", "number", drop),
        *(Column(f"{prefix}{w} ms", "number", None if w == "p50" else drop) for w in which),
    )


_ALL = ("p50", "p90", "p95", "p99")
_TAIL = ("p50", "p95", "p99")


def latency(result: Latency) -> list[Grid]:
    return [
        Grid(
            "Rounds by model (duration; time to first token)",
            (Column("model"), *_percentile_columns("", _ALL, 3), *_percentile_columns("ttft ", _ALL, 1)),
            tuple(
                (m.model, *_ms(m.duration, _ALL), *_ms(m.time_to_first_token, _ALL)) for m in result.models
            ),
        ),
        Grid(
            "Tool calls by tool (duration)",
            (Column("tool"), *_percentile_columns("", _TAIL, 2)),
            tuple((t.tool_name, *_ms(t.duration, _TAIL)) for t in result.tools),
        ),
        Grid(
            "Forwarded requests by endpoint (duration; time to first token)",
            (Column("endpoint"), *_percentile_columns("", _TAIL, 3), *_percentile_columns("ttft ", _TAIL, 1)),
            tuple(
                (e.endpoint, *_ms(e.duration, _TAIL), *_ms(e.time_to_first_token, _TAIL))
                for e in result.endpoints
            ),
        ),
    ]


def series(result: HourlySeries) -> list[Grid]:
    return [
        Grid(
            f"Rounds per UTC hour, last {result.hours}"
            + (f" (model {result.model})" if result.model else ""),
            (
                Column("hour (UTC)"),
                Column("rounds", "number"),
                Column("errors", "number"),
                *_TOKENS,
                Column("USD", "number"),
                Column("unpriced", "number", 1),
                *_percentile_columns("", _TAIL, 2)[1:],
            ),
            tuple(
                (
                    p.hour.strftime("%Y-%m-%d %H:00"),
                    p.rounds,
                    p.errors,
                    *_tokens(p.tokens),
                    p.cost_usd,
                    p.unpriced_rounds,
                    *_ms(p.duration, _TAIL)[1:],
                )
                for p in result.points
            ),
        )
    ]
