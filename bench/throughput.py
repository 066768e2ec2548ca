"""Throughput, cost growth and memory of the workers, with the naive baseline and the COPY ceiling
measured in the same run.

    python -m bench.throughput [--events 100000] [--runs 3] [--workers 1 2 4]

Prints a table and writes bench/results/throughput.json. Uses DATABASE_URL / REDIS_URL (default:
the local servers); every measurement gets its own schema and stream.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, timedelta
from typing import Any

import psycopg
from tqdm import tqdm

from bench.common import REDIS_URL, fresh_schema, median, realistic_events, write_result
from bench.naive import apply_all_naively
from contract.codec import STREAM_FIELD
from contract.connect import Client, connect, placed
from contract.events import Event, RoundCompleted, RoundStarted, TokenUsage, ToolCompleted, ToolStarted
from contract.keys import Keys
from producer.wire import PREBUILT, Encoder
from worker.engine.apply import apply_events


def copy_ceiling(rows: int = 100_000, per_commit: int = 1000) -> float:
    """Raw binary COPY, 1000 rows per commit, into a table shaped like round_metrics (same columns,
    same indexes): the most PostgreSQL here can take of the rows the workers write."""
    from datetime import datetime

    with fresh_schema("ceiling") as url, psycopg.connect(url) as conn:
        conn.execute("CREATE TABLE copy_target (LIKE round_metrics INCLUDING ALL)")
        conn.commit()
        stamp = datetime.now(UTC)
        columns = (
            "round_id",
            "session_id",
            "model",
            "started_at",
            "completed_at",
            "status",
            "prompt_tokens",
            "completion_tokens",
            "total_tokens",
            "prompt_cached_tool_outputs",
            "start_version",
            "completion_version",
        )
        types = [
            "text",
            "text",
            "text",
            "timestamptz",
            "timestamptz",
            "text",
            "int8",
            "int8",
            "int8",
            "int8",
            "text",
            "text",
        ]
        version = f"{stamp.isoformat()}|0|0190f3c2-7a4e-7cc1-9a51-1c2f0e4b5d6a"
        started = time.perf_counter()
        for base in range(0, rows, per_commit):
            with (
                conn.cursor() as cur,
                cur.copy(f"COPY copy_target ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)") as copy,
            ):
                copy.set_types(types)
                for i in range(base, base + per_commit):
                    copy.write_row(
                        (
                            f"0190f3c2-7a4e-7cc1-{i:012d}",
                            f"0190f3c2-7a4e-7cc1-{i // 20:012d}",
                            "gpt-4o",
                            stamp,
                            stamp,
                            "success",
                            i,
                            i,
                            2 * i,
                            0,
                            version,
                            version,
                        )
                    )
            conn.commit()
        return rows / (time.perf_counter() - started)


def naive_rate(events: list[Event], sample: int) -> float:
    with fresh_schema("naive") as url:
        subset = _closed_subset(events, sample)
        started = time.perf_counter()
        apply_all_naively(url, subset)
        return len(subset) / (time.perf_counter() - started)


def _closed_subset(events: list[Event], n: int) -> list[Event]:
    """The first sessions' and forwards' events whole (the seed's SQL needs a start before a completion)."""
    return sorted(events[:n], key=lambda e: e.order_key)


def _group_state(client: Client, keys: Keys, group: str) -> tuple[int, int, int]:
    """(entries read, lag, pending) of the group, summed over the shards."""
    read = lag = pending = 0
    for stream in keys.streams:
        info = next(i for i in client.xinfo_groups(stream) if i["name"] == group.encode())
        read += int(info.get("entries-read") or 0)
        lag += int(info.get("lag") or 0)
        pending += int(info["pending"])
    return read, lag, pending


def pipeline_rate(
    events: list[Event],
    workers: int,
    shards: int = 1,
    redis_url: str = REDIS_URL,
    code: str | None = None,
) -> dict[str, float]:
    """Events/s drained by ``workers`` worker processes from the stream (or ``shards`` streams,
    routed by session as the producer routes them) holding every event, on the Redis (or Redis
    Cluster) at ``redis_url``, with the worker code of the tree ``code`` (default: this one).
    Timed from the first delivery to the last ack, so process start-up is not counted."""
    client = connect(redis_url)
    keys = placed(Keys(stream=f"bench:{uuid.uuid4().hex[:8]}:events", shards=shards), client)
    group = "bench"
    encoder = Encoder(keys)
    try:
        pipe = client.pipeline(transaction=False)
        for i, event in enumerate(events, 1):
            stream, raw = encoder((PREBUILT, 0, None, None, event))
            pipe.xadd(stream, {STREAM_FIELD: raw})
            if i % 2000 == 0:
                pipe.execute()
        pipe.execute()
        for stream in keys.streams:
            client.xgroup_create(stream, group, id="0", mkstream=True)
        with fresh_schema("pipe") as url:
            env = dict(
                os.environ,
                DATABASE_URL=url,
                REDIS_URL=redis_url,
                METRICS_STREAM=keys.stream,
                METRICS_GROUP=group,
                METRICS_SHARDS=str(shards),
            )
            if code is not None:
                env["PYTHONPATH"] = code
            procs = [
                subprocess.Popen(
                    [sys.executable, "-m", "worker.cli", "run", "--burst", "--consumer", f"b{i}"],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                for i in range(workers)
            ]
            peak_rss = 0
            deadlocks = _deadlocks(url)
            while _group_state(client, keys, group)[0] == 0:
                time.sleep(0.002)
            started, cpu_before = time.perf_counter(), _machine_cpu()
            while any(p.poll() is None for p in procs):
                for p in procs:
                    peak_rss = max(peak_rss, _rss_mb(p.pid))
                read, lag, pending = _group_state(client, keys, group)
                if lag == 0 and pending == 0 and read >= len(events):
                    break
                time.sleep(0.01)
            elapsed, cpu_after = time.perf_counter() - started, _machine_cpu()
            for p in procs:
                if p.wait(timeout=60) != 0:
                    raise RuntimeError(f"worker exited with {p.returncode}")
            deadlocks = _deadlocks(url) - deadlocks  # the workers' backends flushed their stats at exit
        busy = (cpu_after[0] - cpu_before[0]) / max(1, cpu_after[1] - cpu_before[1])
        return {
            "events_per_s": len(events) / elapsed,
            "peak_rss_mb": peak_rss,
            "cpu_busy": busy,
            "deadlocks": deadlocks,
        }
    finally:
        for stream in keys.streams:  # one DEL per key: on a cluster they live in different slots
            client.delete(stream)
        client.close()


def _machine_cpu() -> tuple[int, int]:
    """(busy, total) CPU time of the whole machine so far, in clock ticks (Linux /proc/stat)."""
    try:
        with open("/proc/stat") as f:
            ticks = [int(x) for x in f.readline().split()[1:]]
    except OSError:
        return 0, 0
    idle = ticks[3] + ticks[4]  # idle + iowait
    return sum(ticks[:8]) - idle, sum(ticks[:8])


def _deadlocks(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()
        return int(row[0]) if row else 0


def _rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def growth_cost(rounds_before: int, new_rounds: int = 1250) -> float:
    """Microseconds per event applying rounds (start, tool call, completion) to one session that
    already holds ``rounds_before`` rounds: the median over the batches (1,000 events each), so
    that a checkpoint or another process landing in one batch does not decide the figure."""
    from datetime import datetime

    t0 = datetime(2026, 11, 1, tzinfo=UTC)
    with fresh_schema("growth") as url, psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO session_metrics (session_id, model, started_at, updated_at, total_rounds, "
            "total_tokens) VALUES ('big', 'm', %s, %s, %s, %s)",
            (t0, t0, rounds_before, 3 * rounds_before),
        )
        conn.execute(
            "INSERT INTO round_metrics (round_id, session_id, model, started_at, status, total_tokens) "
            "SELECT 'old-' || g, 'big', 'm', %s, 'success', 3 FROM generate_series(1, %s) g",
            (t0, rounds_before),
        )
        conn.execute("VACUUM ANALYZE")  # else autovacuum of the setup rows competes with the timed part
        events: list[Event] = []
        for i in range(new_rounds):
            at = t0 + timedelta(seconds=i)
            rid, tid = f"new-{i}", f"tool-{i}"
            events += [
                RoundStarted(event_id=f"a{i}", occurred_at=at, round_id=rid, session_id="big", model="m"),
                ToolStarted(
                    event_id=f"b{i}",
                    occurred_at=at,
                    tool_call_id=tid,
                    round_id=rid,
                    session_id="big",
                    tool_name="bash",
                ),
                ToolCompleted(
                    event_id=f"c{i}",
                    occurred_at=at,
                    tool_call_id=tid,
                    round_id=rid,
                    session_id="big",
                    success=True,
                ),
                RoundCompleted(
                    event_id=f"d{i}",
                    occurred_at=at,
                    round_id=rid,
                    session_id="big",
                    status="success",
                    usage=TokenUsage(prompt_tokens=1, completion_tokens=2, total_tokens=3),
                ),
            ]
        costs = []
        for i in range(0, len(events), 1000):
            batch = events[i : i + 1000]
            started = time.perf_counter()
            apply_events(conn, batch)
            costs.append((time.perf_counter() - started) / len(batch) * 1e6)
        total = conn.execute("SELECT total_rounds FROM session_metrics WHERE session_id = 'big'").fetchone()[
            0
        ]
        assert total == rounds_before + new_rounds, total
        return median(costs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument(
        "--sharded",
        type=int,
        nargs="*",
        default=[2],
        help="also run N workers on N shards routed by session (default: 2)",
    )
    parser.add_argument("--naive-sample", type=int, default=1500)
    args = parser.parse_args(argv)

    events = realistic_events(args.events)
    configs = [(w, 1) for w in args.workers] + [(w, w) for w in args.sharded]
    labels = {c: f"{c[0]} worker(s)" + (f", {c[1]} shards" if c[1] > 1 else "") for c in configs}
    steps = args.runs * (1 + len(configs)) + 1 + 3 * args.runs
    bar = tqdm(total=steps, desc="benchmark", unit="step", file=sys.stderr)
    ceilings: list[float] = []
    naive: list[float] = []
    growth: dict[int, list[float]] = {k: [] for k in (10, 1000, 10_000)}
    pipes: dict[tuple[int, int], list[dict[str, float]]] = {c: [] for c in configs}
    for _ in range(args.runs):
        ceilings.append(copy_ceiling())
        bar.update()
        for config in configs:
            pipes[config].append(pipeline_rate(events, *config))
            bar.update()
        for k, costs in growth.items():
            costs.append(growth_cost(k))
            bar.update()
    naive.append(naive_rate(events, args.naive_sample))
    bar.update()
    bar.close()

    ceiling = median(ceilings)
    naive_eps = median(naive)
    rows: list[tuple[str, str, str]] = [
        ("raw binary COPY ceiling (rows/s)", f"{ceiling:,.0f}", "1.00 of ceiling"),
        ("naive seed port (events/s)", f"{naive_eps:,.0f}", f"{naive_eps / ceiling:.4f} of ceiling"),
    ]
    one = median([r["events_per_s"] for r in pipes[configs[0]]])
    cpus = os.cpu_count() or 1
    for config in configs:
        runs = pipes[config]
        eps = median([r["events_per_s"] for r in runs])
        cpu_us = median([r["cpu_busy"] * cpus / r["events_per_s"] * 1e6 for r in runs])
        rows.append(
            (
                f"{labels[config]}, end to end (events/s)",
                f"{eps:,.0f}",
                (
                    f"{eps / ceiling:.2f} of ceiling, {eps / one:.2f}x one worker, "
                    f"{eps / naive_eps:,.0f}x naive, "
                    f"peak RSS {max(r['peak_rss_mb'] for r in runs):.0f} MB/worker, "
                    f"machine CPU {median([r['cpu_busy'] for r in runs]):.0%} busy ({cpu_us:.0f} us of CPU "
                    f"per event), {sum(int(r['deadlocks']) for r in runs)} deadlocks"
                ),
            )
        )
    base = median(growth[10])
    for k, costs in growth.items():
        rows.append(
            (
                f"apply cost, session with {k:,} rounds (us/event)",
                f"{median(costs):.1f}",
                f"{median(costs) / base:.2f}x the 10-round cost",
            )
        )
    width = max(len(r[0]) for r in rows)
    print(f"\n{args.events:,} events of the simulator's mix, median of {args.runs} runs\n")
    for name, value, ratio in rows:
        print(f"{name:<{width}}  {value:>10}  {ratio}")
    data: dict[str, Any] = {
        "events": args.events,
        "runs": args.runs,
        "cpus": os.cpu_count(),
        "copy_ceiling_rows_per_s": ceilings,
        "naive_events_per_s": naive,
        "pipelines": {labels[c]: runs for c, runs in pipes.items()},
        "growth_us_per_event": growth,
        "summary": {name: {"value": value, "ratio": ratio} for name, value, ratio in rows},
    }
    print(f"\nwritten {write_result('throughput', data)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
