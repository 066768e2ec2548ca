"""``metrics-otlp`` benchmark: spans/s one receiver process accepts (answered 200, so in Redis),
protobuf and OTLP/JSON, 512-span requests, with request latency percentiles; next to the Python
producer (``producer.Publisher.publish``) putting the same events into Redis, in the same run.

    python -m bench.otlp [--runs 3] [--requests 200] [--clients 2]

Each run starts ``python -m producer.otlp.server`` on a stream of its own (no backlog bound, the
stream is not drained), sends ``--requests`` pre-encoded requests from ``--clients`` threads
(http.client, keep-alive) per content type, then publishes the events the mapping makes of the
same spans with one Publisher and flushes. The requests are bench/otlp_mapping.py's: agent runs
as instrumentations export them. Reports medians of the runs, the receiver's peak RSS, and the
ratio to the producer's events/s; writes bench/results/otlp.json.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import redis
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from bench.common import REDIS_URL, write_result
from bench.otlp_mapping import request as spans_of_request
from producer import ProducerSettings, Publisher
from producer.otlp.mapping import map_spans
from producer.otlp.spans import Span
from worker.dev.embedded import free_port

TARGETS = {"spans_per_s": 20_000.0, "p99_ms": 50.0}
PROTOBUF, JSON = "application/x-protobuf", "application/json"


def _pb_value(target: Any, value: Any) -> None:
    if isinstance(value, bool):
        target.bool_value = value
    elif isinstance(value, int):
        target.int_value = value
    elif isinstance(value, float):
        target.double_value = value
    elif isinstance(value, list):
        for item in value:
            _pb_value(target.array_value.values.add(), item)
    else:
        target.string_value = str(value)


def _json_value(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, list):
        return {"arrayValue": {"values": [_json_value(v) for v in value]}}
    return {"stringValue": str(value)}


def encode_protobuf(spans: list[Span]) -> bytes:
    req = ExportTraceServiceRequest()
    resource_spans = req.resource_spans.add()
    for key, value in spans[0].resource.items():
        kv = resource_spans.resource.attributes.add(key=key)
        _pb_value(kv.value, value)
    scope = resource_spans.scope_spans.add()
    scope.scope.name = "bench"
    for s in spans:
        span = scope.spans.add(
            trace_id=bytes.fromhex(s.trace_id),
            span_id=bytes.fromhex(s.span_id),
            parent_span_id=bytes.fromhex(s.parent_span_id) if s.parent_span_id else b"",
            name=s.name,
            kind=s.kind,  # type: ignore[arg-type]
            start_time_unix_nano=s.start_ns,
            end_time_unix_nano=s.end_ns,
        )
        for key, value in s.attributes.items():
            _pb_value(span.attributes.add(key=key).value, value)
    return bytes(req.SerializeToString())


def encode_json(spans: list[Span]) -> bytes:
    def attrs(values: Any) -> list[dict[str, Any]]:
        return [{"key": k, "value": _json_value(v)} for k, v in values.items()]

    out = [
        {
            "traceId": s.trace_id,
            "spanId": s.span_id,
            **({"parentSpanId": s.parent_span_id} if s.parent_span_id else {}),
            "name": s.name,
            "kind": s.kind,
            "startTimeUnixNano": str(s.start_ns),
            "endTimeUnixNano": str(s.end_ns),
            "attributes": attrs(s.attributes),
        }
        for s in spans
    ]
    resource = {"attributes": attrs(spans[0].resource)}
    body = {
        "resourceSpans": [{"resource": resource, "scopeSpans": [{"scope": {"name": "bench"}, "spans": out}]}]
    }
    return json.dumps(body).encode()


def send_all(port: int, bodies: list[bytes], content_type: str, clients: int) -> tuple[float, list[float]]:
    """Every body POSTed once, ``clients`` at a time; (elapsed s, latencies in ms). Fails on a non-200."""
    latencies: list[float] = []
    lock = threading.Lock()
    next_index = iter(range(len(bodies)))
    errors: list[str] = []

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        headers = {"Content-Type": content_type}
        mine = []
        while True:
            with lock:
                i = next(next_index, None)
            if i is None:
                break
            start = time.perf_counter()
            conn.request("POST", "/v1/traces", bodies[i], headers)
            response = conn.getresponse()
            payload = response.read()
            mine.append((time.perf_counter() - start) * 1000)
            if response.status != 200:
                errors.append(f"{response.status}: {payload[:200]!r}")
                break
        conn.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    assert not errors, errors[:3]
    return elapsed, latencies


def start_receiver(port: int, stream: str, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "REDIS_URL": REDIS_URL, "METRICS_STREAM": stream}
    with log.open("w") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "producer.otlp.server",
                "--port",
                str(port),
                "--max-backlog",
                "0",
                "--log-level",
                "warning",
            ],
            env=env,
            stdout=out,
            stderr=out,
        )
    deadline = time.monotonic() + 30
    while True:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return proc
        except OSError:
            pass
        assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.05)


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def producer_rate(events: list[Any], stream: str) -> float:
    """Events/s the Python producer puts into Redis (published, then flushed)."""
    with tempfile.TemporaryDirectory(prefix="otlp-bench-") as spool:
        settings = ProducerSettings(
            redis_url=REDIS_URL, stream=stream, spool_dir=Path(spool), queue_size=100_000
        )
        pub = Publisher(settings)
        start = time.perf_counter()
        for index, event in enumerate(events):
            pub.publish(event)
            if index % 1024 == 1023:
                while pub.queued > 40_000:  # never overflow: the sender's speed, not the drop path
                    time.sleep(0.0002)
        assert pub.flush(300), pub.stats()
        elapsed = time.perf_counter() - start
        stats = pub.stats()
        pub.close(5)
    assert stats["sent"] == len(events), stats
    return len(events) / elapsed


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--requests", type=int, default=200, help="512-span requests per content type and run"
    )
    parser.add_argument("--clients", type=int, default=2, help="concurrent HTTP clients")
    args = parser.parse_args(argv)
    requests = [spans_of_request(b) for b in range(args.requests)]
    spans_per_request = len(requests[0])
    events = [e for spans in requests for e in map_spans(spans).events]
    bodies = {PROTOBUF: [encode_protobuf(r) for r in requests], JSON: [encode_json(r) for r in requests]}
    client = redis.Redis.from_url(REDIS_URL)
    runs: dict[str, list[dict[str, float]]] = {PROTOBUF: [], JSON: [], "producer": []}
    for run in range(args.runs):
        stream = f"bench:otlp:{uuid.uuid4().hex[:10]}:events"
        port = free_port()
        with tempfile.TemporaryDirectory() as folder:
            proc = start_receiver(port, stream, Path(folder) / "otlp.log")
            try:
                for content_type, encoded in bodies.items():
                    elapsed, latencies = send_all(port, encoded, content_type, args.clients)
                    runs[content_type].append(
                        {
                            "spans_per_s": len(encoded) * spans_per_request / elapsed,
                            "events_per_s": len(events) / elapsed,
                            "p50_ms": percentile(latencies, 0.5),
                            "p99_ms": percentile(latencies, 0.99),
                            "peak_rss_mib": peak_rss_mib(proc.pid),
                        }
                    )
            finally:
                proc.send_signal(signal.SIGTERM)
                proc.wait(30)
        landed = client.xlen(stream)
        assert landed == 2 * len(events), (landed, 2 * len(events))  # every event, once per content type
        client.delete(stream)
        baseline = f"bench:otlp:{uuid.uuid4().hex[:10]}:events"
        runs["producer"].append({"events_per_s": producer_rate(events, baseline)})
        for key in client.scan_iter(f"{baseline}*"):
            client.delete(key)
        print(f"run {run + 1}/{args.runs} done", file=sys.stderr)
    results: dict[str, dict[str, float]] = {
        case: {k: statistics.median(r[k] for r in rows) for k in rows[0]} for case, rows in runs.items()
    }
    producer = results["producer"]["events_per_s"]
    print(
        f"{spans_per_request} spans -> {len(events) // len(requests)} events per request; "
        f"{args.requests} requests per content type, {args.clients} clients; median of {args.runs}"
    )
    print(
        f"{'case':<24} {'spans/s':>9} {'events/s':>9} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'RSS MiB':>8} {'x producer':>10}"
    )
    for content_type in (PROTOBUF, JSON):
        row = results[content_type]
        print(
            f"{content_type:<24} {row['spans_per_s']:>9,.0f} {row['events_per_s']:>9,.0f} "
            f"{row['p50_ms']:>7.1f} {row['p99_ms']:>7.1f} {row['peak_rss_mib']:>8.0f} "
            f"{row['events_per_s'] / producer:>10.2f}"
        )
    print(f"{'producer.Publisher':<24} {'':>9} {producer:>9,.0f}")
    print(f"targets: {TARGETS['spans_per_s']:,.0f} spans/s with protobuf, p99 <= {TARGETS['p99_ms']:.0f} ms")
    settings = {
        "requests": args.requests,
        "clients": args.clients,
        "runs": args.runs,
        "spans_per_request": 512,
    }
    path = write_result("otlp", {"settings": settings, "targets": TARGETS, "results": results, "runs": runs})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
