"""The OTLP/HTTP traces endpoint as a plain ASGI app: ``POST /v1/traces``, ``GET /healthz``,
``GET /metrics``.

A request to ``/v1/traces`` goes through, in order: the token (401), the content type (415) and
encoding (415), admission (503 with ``Retry-After`` while Redis is away, the backlog is over its
bound, or the in-flight requests or bytes are at their cap), the body read as it streams (chunked
or not) and decompressed up to ``max_body`` (413, without decompressing further), decoding (400),
the mapping (its rejections: a partial success), publishing (503 when Redis does not take the
events), and only then 200. Every refusal carries a ``google.rpc.Status`` saying why
(producer/otlp/answers.py). ``/healthz`` and ``/metrics`` need no token: they show counts and
states, never telemetry.

A plain ASGI app rather than Starlette: one route, and every microsecond of a 512-span request
counts (the benchmark: bench/otlp.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
import zlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from contract.tokens import TokenCheck, bearer
from producer.otlp import answers
from producer.otlp.answers import JSON, PROTOBUF
from producer.otlp.decode import DecodeError, decode_json, decode_protobuf
from producer.otlp.mapping import map_spans
from producer.otlp.publishing import Publishing, Unavailable
from producer.otlp.settings import OtlpSettings

log = logging.getLogger(__name__)

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

#: Retry-After (s) when the backlog is over its bound, or the in-flight cap is reached.
RETRY_BACKLOG, RETRY_BUSY = 2, 1
REALM = b'Bearer realm="metrics-otlp"'
_DECODERS = {PROTOBUF: decode_protobuf, JSON: decode_json}


class Refusal(Exception):
    """A request answered with an error status and a google.rpc.Status."""

    def __init__(
        self, status: int, code: int, reason: str, message: str, retry_after: int | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.reason, self.retry_after = status, code, reason, retry_after


class Metrics:
    """The receiver's Prometheus metrics, in a registry of its own (one per app)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.spans_received = Counter("metrics_otlp_spans_received", "Spans in decoded requests", registry=r)
        self.spans_rejected = Counter(
            "metrics_otlp_spans_rejected", "Spans answered as rejected (partial success)", registry=r
        )
        self.events_published = Counter(
            "metrics_otlp_events_published", "Contract events Redis took from the receiver", registry=r
        )
        self.requests = Counter(
            "metrics_otlp_requests", "Requests to /v1/traces by answer", ["code"], registry=r
        )
        self.refused = Counter(
            "metrics_otlp_requests_refused",
            "Requests to /v1/traces refused, by reason (throttled: redis_unavailable, backlog, busy)",
            ["reason"],
            registry=r,
        )
        self.latency = Histogram(
            "metrics_otlp_request_seconds",
            "Time to answer a request to /v1/traces",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.backlog = Gauge(
            "metrics_otlp_backlog", "Entries the workers have not taken yet (last measured)", registry=r
        )
        self.redis_up = Gauge(
            "metrics_otlp_redis_up", "1 while Redis takes the events, 0 while it is away", registry=r
        )
        self.inflight = Gauge("metrics_otlp_inflight_requests", "Requests being handled now", registry=r)


class OtlpApp:
    """The ASGI app; its lifespan starts and stops the publisher thread."""

    def __init__(self, settings: OtlpSettings, tokens: Sequence[str] = ()) -> None:
        self.settings = settings
        self.keys = settings.producer.keys
        self.tokens = TokenCheck(tokens)
        self.metrics = Metrics()
        self.publishing = Publishing(settings)
        self._inflight = 0
        self._inflight_bytes = 0
        self._started = False

    def start(self) -> None:
        if not self._started:
            self._started = True
            self.publishing.start()

    def stop(self) -> None:
        self.publishing.stop()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path, method = scope["path"], scope["method"]
        if path == "/v1/traces":
            if method != "POST":
                await _answer(
                    send, 405, JSON, answers.status(JSON, 12, "use POST"), extra=[(b"allow", b"POST")]
                )
                return
            await self._traces(scope, receive, send)
        elif path == "/healthz" and method in ("GET", "HEAD"):
            up = self.publishing.redis_up
            body = b'{"status":"ok","redis":"%s","backlog":%d}' % (
                b"up" if up else b"down",
                self.publishing.backlog,
            )
            await _answer(send, 200, JSON, body)
        elif path == "/metrics" and method in ("GET", "HEAD"):
            self.metrics.backlog.set(self.publishing.backlog)
            self.metrics.redis_up.set(1 if self.publishing.redis_up else 0)
            self.metrics.inflight.set(self._inflight)
            await _answer(send, 200, CONTENT_TYPE_LATEST, generate_latest(self.metrics.registry))
        else:
            await _answer(
                send,
                404,
                JSON,
                answers.status(JSON, 5, f"no route {method} {path}; OTLP traces go to POST /v1/traces"),
            )

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await asyncio.to_thread(self.stop)
                await send({"type": "lifespan.shutdown.complete"})
                return

    # -- POST /v1/traces ---------------------------------------------------------------------

    async def _traces(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        headers = dict(scope["headers"])
        media = headers.get(b"content-type", b"").split(b";")[0].strip().lower().decode("latin-1")
        answer_type = JSON if media == JSON else PROTOBUF
        held = 0
        admitted = False
        try:
            self._check_token(headers)
            decoder = _DECODERS.get(media)
            if decoder is None:
                raise Refusal(
                    415,
                    answers.INVALID_ARGUMENT,
                    "unsupported_media_type",
                    f"Content-Type {media or '(none)'!r} is not supported: send {PROTOBUF} or {JSON}",
                )
            gzip = _gzip(headers)
            self._admit()
            admitted = True
            self._inflight += 1
            body, held = await self._read_body(receive, gzip)
            try:
                spans = decoder(body)
            except DecodeError as exc:
                raise Refusal(400, answers.INVALID_ARGUMENT, "undecodable", str(exc)) from None
            del body
            self.metrics.spans_received.inc(len(spans))
            mapped = map_spans(spans)
            by_stream: dict[str, list[bytes]] = {}
            if self.keys.shards == 1 and mapped.wire:
                by_stream[self.keys.stream] = [raw for _, raw in mapped.wire]
            elif mapped.wire:
                stream_for = self.keys.stream_for
                for route, raw in mapped.wire:
                    by_stream.setdefault(stream_for(route), []).append(raw)
            try:
                added = await asyncio.wrap_future(self.publishing.submit(by_stream, len(mapped.wire)))
            except Unavailable as exc:
                raise Refusal(
                    503, answers.UNAVAILABLE, "redis_unavailable", str(exc), exc.retry_after
                ) from None
            self.metrics.events_published.inc(added)
            if mapped.rejected:
                self.metrics.spans_rejected.inc(len(mapped.rejected))
            await _answer(send, 200, answer_type, answers.success(answer_type, mapped.rejected))
            self.metrics.requests.labels("200").inc()
        except Refusal as refusal:
            await self._refuse(send, answer_type, refusal)
        finally:
            if admitted:
                self._inflight -= 1
            self._inflight_bytes -= held
            self.metrics.latency.observe(time.perf_counter() - started)

    def _check_token(self, headers: dict[bytes, bytes]) -> None:
        if not self.tokens.enabled:
            return
        token = bearer(headers.get(b"authorization", b"").decode("latin-1"))
        if token is None:
            raise Refusal(
                401,
                answers.UNAUTHENTICATED,
                "unauthorized",
                "an ingest token is required: send the header Authorization: Bearer <token> "
                "(OTEL_EXPORTER_OTLP_HEADERS=Authorization=Bearer%20<token>)",
            )
        if not self.tokens.matches(token):
            raise Refusal(
                401,
                answers.UNAUTHENTICATED,
                "unauthorized",
                "the token was refused (an ingest token from METRICS_INGEST_TOKENS is needed)",
            )

    def _admit(self) -> None:
        """503 with Retry-After instead of taking work that cannot be finished now."""
        publishing, settings = self.publishing, self.settings
        if not publishing.redis_up:
            raise Refusal(
                503,
                answers.UNAVAILABLE,
                "redis_unavailable",
                f"Redis is unavailable; retry after {publishing.retry_after} s",
                publishing.retry_after,
            )
        if settings.max_backlog and publishing.backlog > settings.max_backlog:
            raise Refusal(
                503,
                answers.UNAVAILABLE,
                "backlog",
                f"{publishing.backlog} events wait for the workers, over the bound of "
                f"{settings.max_backlog} (METRICS_OTLP_MAX_BACKLOG); retry after {RETRY_BACKLOG} s",
                RETRY_BACKLOG,
            )
        if self._inflight >= settings.max_inflight:
            raise Refusal(
                503,
                answers.UNAVAILABLE,
                "busy",
                f"{self._inflight} requests in progress, the most this receiver takes at once "
                f"(METRICS_OTLP_MAX_INFLIGHT); retry after {RETRY_BUSY} s",
                RETRY_BUSY,
            )

    async def _read_body(self, receive: Receive, gzip: bool) -> tuple[bytes, int]:
        """The body as it streams in, decompressed, with its bytes counted against both caps;
        returns it and the bytes held (released by the caller). Raises Refusal."""
        limit = self.settings.max_body
        parts: list[bytes] = []
        size = 0
        inflater = _Gunzip() if gzip else None
        try:
            more = True
            while more:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise Refusal(400, answers.INVALID_ARGUMENT, "disconnected", "the client went away")
                chunk: bytes = message.get("body", b"")
                more = message.get("more_body", False)
                while chunk:
                    if inflater is None:
                        out, chunk = chunk, b""
                    else:
                        out, chunk = inflater.feed(chunk, limit - size)
                    size += len(out)
                    self._inflight_bytes += len(out)
                    if size > limit:
                        raise Refusal(
                            413,
                            answers.RESOURCE_EXHAUSTED,
                            "too_large",
                            f"the body is over {limit} bytes{' once decompressed' if gzip else ''} "
                            "(METRICS_OTLP_MAX_BODY): send smaller batches",
                        )
                    if self._inflight_bytes > self.settings.max_inflight_bytes:
                        raise Refusal(
                            503,
                            answers.UNAVAILABLE,
                            "busy",
                            f"the requests in progress hold over {self.settings.max_inflight_bytes} "
                            f"bytes (METRICS_OTLP_MAX_INFLIGHT_BYTES); retry after {RETRY_BUSY} s",
                            RETRY_BUSY,
                        )
                    parts.append(out)
            if inflater is not None and not inflater.complete:
                raise Refusal(
                    400, answers.INVALID_ARGUMENT, "undecodable", "body: the gzip stream is truncated"
                )
        except BaseException:
            self._inflight_bytes -= size
            raise
        return b"".join(parts), size

    async def _refuse(self, send: Send, answer_type: str, refusal: Refusal) -> None:
        extra = []
        if refusal.retry_after is not None:
            extra.append((b"retry-after", str(refusal.retry_after).encode()))
        if refusal.status == 401:
            extra.append((b"www-authenticate", REALM))
        self.metrics.refused.labels(refusal.reason).inc()
        self.metrics.requests.labels(str(refusal.status)).inc()
        if refusal.status >= 500:
            log.debug("refused with %d: %s", refusal.status, refusal)
        body = answers.status(answer_type, refusal.code, str(refusal))
        await _answer(send, refusal.status, answer_type, body, extra=extra)


class _Gunzip:
    """gzip, decompressed as it arrives, never more than asked for (concatenated members are one body)."""

    def __init__(self) -> None:
        self._inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)

    @property
    def complete(self) -> bool:
        return self._inflater.eof

    def feed(self, chunk: bytes, room: int) -> tuple[bytes, bytes]:
        """At most ``room`` + 1 bytes out of ``chunk``, and what is left of it: one byte over the
        limit is enough to answer 413, and nothing more is decompressed."""
        if self._inflater.eof:  # the next member
            self._inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            out = self._inflater.decompress(chunk, max(room, 0) + 1)
        except zlib.error as exc:
            raise Refusal(
                400, answers.INVALID_ARGUMENT, "undecodable", f"body: not valid gzip ({exc})"
            ) from None
        return out, self._inflater.unconsumed_tail or self._inflater.unused_data


def _gzip(headers: dict[bytes, bytes]) -> bool:
    encoding = headers.get(b"content-encoding", b"identity").strip().lower()
    if encoding in (b"", b"identity"):
        return False
    if encoding == b"gzip":
        return True
    raise Refusal(
        415,
        answers.INVALID_ARGUMENT,
        "unsupported_media_type",
        f"Content-Encoding {encoding.decode('latin-1')!r} is not supported: send gzip or identity",
    )


async def _answer(
    send: Send, status: int, content_type: str, body: bytes, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    headers = [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers + (extra or [])})
    await send({"type": "http.response.body", "body": body})
