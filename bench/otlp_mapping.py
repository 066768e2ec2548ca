"""Mapping cost per span (producer/otlp/mapping.py), on a typical 512-span export request, up to
the events' wire JSON (what the receiver publishes), next to what reading them back costs.

    python -m bench.otlp_mapping [--batches 40] [--rounds 5]

A request holds agent runs as an instrumented agent exports them: per trace an ``invoke_agent``
root, chat rounds with usage, the httpx span under each round, tool calls between rounds, and a
few spans that are not GenAI (ignored). Reports the median over ``--rounds`` of each round's
fastest batch; next to it, the same events decoded by contract.codec (what a worker pays per event),
in the same run.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

from contract import codec
from producer.otlp import mapping
from producer.otlp.spans import KIND_CLIENT, KIND_INTERNAL, Span

_RESOURCE = {"service.name": "agent", "session.id": "s-bench"}


def _span(
    trace: str, n: int, parent: int | None, name: str, kind: int, start: int, attrs: dict[str, Any]
) -> Span:
    return Span(
        trace_id=trace,
        span_id=f"{n:016x}",
        parent_span_id=None if parent is None else f"{parent:016x}",
        name=name,
        kind=kind,
        start_ns=start,
        end_ns=start + 900_000_000,
        attributes=attrs,
        resource=_RESOURCE,
    )


def request(batch: int, size: int = 512) -> list[Span]:
    """One export request of ``size`` spans: agent runs of 16 spans (1 agent, 5 rounds, 5 HTTP
    spans, 4 tool calls, 1 span that is not GenAI)."""
    spans: list[Span] = []
    t0 = 1_796_558_400_000_000_000 + batch * 10**12
    run = 0
    while len(spans) < size:
        trace = f"{batch:08x}{run:024x}"
        root = 1
        spans.append(
            _span(trace, root, None, "invoke_agent planner", KIND_INTERNAL, t0, {
                "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "planner",
                "gen_ai.request.model": "gpt-4o", "gen_ai.conversation.id": f"conv-{run % 8}",
            })
        )  # fmt: skip
        n = 2
        for r in range(5):
            start = t0 + r * 2_000_000_000
            chat = n
            spans.append(
                _span(trace, chat, root, "chat gpt-4o", KIND_CLIENT, start, {
                    "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
                    "gen_ai.request.model": "gpt-4o", "gen_ai.response.model": "gpt-4o-2024-08-06",
                    "gen_ai.usage.input_tokens": 1200 + r, "gen_ai.usage.output_tokens": 300,
                    "gen_ai.usage.cache_read.input_tokens": 1024, "gen_ai.response.finish_reasons": ["stop"],
                    "gen_ai.conversation.id": f"conv-{run % 8}", "server.address": "api.openai.com",
                })
            )  # fmt: skip
            spans.append(
                _span(trace, chat + 1, chat, "POST", KIND_CLIENT, start + 1000, {
                    "http.request.method": "POST", "url.full": "https://api.openai.com/v1/chat/completions",
                    "server.address": "api.openai.com", "http.response.status_code": 200,
                })
            )  # fmt: skip
            n += 2
            if r < 4:
                spans.append(
                    _span(trace, n, root, "execute_tool read_file", KIND_INTERNAL, start + 1_000_000_000, {
                        "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "read_file",
                        "gen_ai.tool.call.id": f"call_{r}", "gen_ai.conversation.id": f"conv-{run % 8}",
                    })
                )  # fmt: skip
                n += 1
        spans.append(_span(trace, n, root, "SELECT", KIND_CLIENT, t0, {"db.system": "postgresql"}))
        run += 1
    return spans[:size]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    requests = [request(b) for b in range(args.batches)]
    size = len(requests[0])
    wire = [raw for _, raw in mapping.map_spans(requests[0]).wire]
    whole, decoding = [], []
    for _ in range(args.rounds):
        best = min(_timed(lambda spans=spans: mapping.map_spans(spans)) for spans in requests)
        whole.append(best / size * 1e6)
        best_d = min(_timed(lambda: [codec.decode(raw) for raw in wire]) for _ in range(len(requests)))
        decoding.append(best_d / size * 1e6)
    us, d = statistics.median(whole), statistics.median(decoding)
    print(f"{size} spans -> {len(wire)} events per request")
    print(f"mapping to wire JSON: {us:.1f} µs per span ({1e6 / us:,.0f} spans/s), median of {args.rounds}")
    print(f"decoding those events (contract.codec): {d:.1f} µs per span ({d / us:.0%} of the mapping)")


def _timed(fn: Any) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
