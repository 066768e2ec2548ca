"""The write path of several code versions, robust to a noisy machine: each version in a process of
its own (its own worker package and schema.sql, from a git worktree of the revision under /tmp)
applies the same 1,000-event batches with the engine in-process, the versions taking turns batch by
batch (the first one rotating); the median of the per-batch time ratios against the first version.
The apply alone: PostgreSQL's side and ``prepare``, without Redis and decoding.

    python -m bench.versions_apply --rev 4740668 --rev main --rev HEAD [--events 30000] [--runs 3]

``HEAD`` is this checkout itself. Writes bench/results/versions_apply.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import IO, Any

from bench.common import median, write_result
from bench.rollup_write import worktree

ROOT = Path(__file__).resolve().parent.parent

# The child: one fresh schema, the batches made as every version makes them (bench.common's seed),
# then one batch applied per line read ("i"), its time in seconds written back.
_CHILD = """
import sys, time
import psycopg
from bench.common import fresh_schema, realistic_events
from worker.engine.apply import apply_events
events, batch = int(sys.argv[1]), int(sys.argv[2])
stream = realistic_events(events)
batches = [stream[i : i + batch] for i in range(0, len(stream), batch)]
with fresh_schema("versions") as url, psycopg.connect(url, autocommit=True) as conn:
    print(len(batches), flush=True)
    for line in sys.stdin:
        b = batches[int(line)]
        began = time.perf_counter()
        apply_events(conn, b)
        print(time.perf_counter() - began, flush=True)
"""


def _ask(child: subprocess.Popen[str], line: str) -> str:
    stdin: IO[str] | None = child.stdin
    stdout: IO[str] | None = child.stdout
    assert stdin is not None and stdout is not None
    stdin.write(line + "\n")
    stdin.flush()
    return stdout.readline().strip()


def run_once(codes: list[Path], events: int, batch: int) -> list[dict[str, float]]:
    """One run: every version applies every batch, in turns; per version its median batch time
    and the median of its per-batch speed ratios over the first version's."""
    children = [
        subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(events), str(batch)],
            cwd=code,
            env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},  # its own code, not ours
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for code in codes
    ]
    try:
        counts = {int(c.stdout.readline()) for c in children if c.stdout is not None}
        assert len(counts) == 1, f"the versions made different batches: {counts}"
        n = counts.pop()
        times: list[list[float]] = [[] for _ in codes]
        for i in range(n):
            order = list(range(len(codes)))
            order = order[i % len(order) :] + order[: i % len(order)]
            for k in order:
                times[k].append(float(_ask(children[k], str(i))))
    finally:
        for c in children:
            if c.stdin is not None:
                c.stdin.close()
            c.wait()
    return [
        {
            "batch_ms": median(t) * 1000,
            "speed_over_first": median([first / mine for first, mine in zip(times[0], t, strict=True)]),
        }
        for t in times
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rev", action="append", required=True, help="a revision (HEAD: this checkout)")
    parser.add_argument("--events", type=int, default=30_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    codes = [ROOT if rev == "HEAD" else worktree(rev) for rev in args.rev]
    runs = []
    for i in range(args.runs):
        runs.append(run_once(codes, args.events, args.batch))
        print(f"run {i + 1}: {json.dumps(dict(zip(args.rev, runs[-1], strict=True)))}", flush=True)
    data: dict[str, Any] = {"revs": args.rev, "events": args.events, "batch": args.batch, "runs": runs}
    data["speed_over_first"] = {
        rev: median([r[k]["speed_over_first"] for r in runs]) for k, rev in enumerate(args.rev)
    }
    print(json.dumps(data["speed_over_first"]))
    write_result("versions_apply", data)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
