"""Decode cost per event (the worker's hot path), this tree against a baseline tree, in one run.

    python -m bench.decode_bench [--baseline GIT_REF] [--events 50000] [--rounds 3]

The baseline's contract/ is exported from git (``git archive``) into a temporary folder. The same
payloads (the simulator's mix, encoded once here) are decoded by a child process of each tree in
turn, alternating, so the noise of a shared machine falls on both alike; each child reports the
fastest of 5 passes, in batches of 1,000 dropped as a worker drops them. Without --baseline only
this tree is measured.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


_CHILD = """
import statistics, sys, time
from pathlib import Path
from contract.codec import decode
payloads = Path(sys.argv[1]).read_bytes().split(b"\\n")
passes = []
for _ in range(5):
    started = time.perf_counter()
    for i in range(0, len(payloads), 1000):
        batch = [decode(raw) for raw in payloads[i : i + 1000]]
        del batch
    passes.append((time.perf_counter() - started) / len(payloads) * 1e6)
print(min(passes))
"""


def _measure(tree: Path, path: str) -> float:
    """µs/event of the contract/ package found in ``tree`` (a child process; nothing else imported)."""
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, path],
        env={**os.environ, "PYTHONPATH": str(tree)},
        cwd=tree,
        check=True,
        capture_output=True,
        text=True,
    )
    return float(out.stdout.strip())


def _export(ref: str, into: Path) -> None:
    archive = subprocess.run(
        ["git", "archive", ref, "contract"], cwd=ROOT, check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", metavar="GIT_REF", help="a commit to compare with, e.g. main")
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    from bench.common import realistic_events
    from contract.codec import encode

    events = realistic_events(args.events)
    with tempfile.TemporaryDirectory() as tmp:
        payloads = Path(tmp) / "payloads.jsonl"
        payloads.write_bytes(b"\n".join(encode(ev) for ev in events))
        baseline = Path(tmp) / "baseline"
        if args.baseline is not None:
            baseline.mkdir()
            _export(args.baseline, baseline)
        ours, theirs = [], []
        for _ in range(args.rounds):
            ours.append(_measure(ROOT, str(payloads)))
            if args.baseline is not None:
                theirs.append(_measure(baseline, str(payloads)))
        mine = statistics.median(ours)
        print(f"decode, this tree: median {mine:.2f}, best {min(ours):.2f} µs/event over {args.rounds} runs")
        if theirs:
            base = statistics.median(theirs)
            print(f"decode, baseline {args.baseline}: median {base:.2f}, best {min(theirs):.2f} µs/event")
            print(f"ratio this/baseline: median {mine / base:.2f}, best {min(ours) / min(theirs):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
