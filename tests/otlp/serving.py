"""The receiver in the test's own process: uvicorn on a thread, on a free port, with the mapping
(or its stand-in) given; and the raw HTTP client's helpers."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from google.rpc import status_pb2

from contract.codec import STREAM_FIELD, decode
from contract.connect import Client, placed
from contract.keys import Keys
from contract.routing import routing_id
from producer.otlp.app import OtlpApp
from producer.otlp.settings import OtlpSettings
from producer.settings import ProducerSettings
from worker.dev.embedded import free_port

PROTOBUF, JSON = "application/x-protobuf", "application/json"


@dataclass
class Receiver:
    app: OtlpApp
    url: str

    def post(self, body: bytes, content_type: str = PROTOBUF, **headers: str) -> httpx.Response:
        return httpx.post(
            f"{self.url}/v1/traces",
            content=body,
            headers={"content-type": content_type, **headers},
            timeout=30,
        )


@contextlib.contextmanager
def serving(settings: OtlpSettings, tokens: tuple[str, ...] = ()) -> Iterator[Receiver]:
    app = OtlpApp(settings, tokens)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the receiver did not start"
        time.sleep(0.01)
    try:
        yield Receiver(app, f"http://127.0.0.1:{port}")
    finally:
        server.should_exit = True
        thread.join(15)


def status_of(response: httpx.Response) -> tuple[int, str]:
    """(code, message) of a google.rpc.Status answer, parsed by the content type it came in."""
    if response.headers["content-type"] == PROTOBUF:
        status = status_pb2.Status()
        status.ParseFromString(response.content)
        return status.code, status.message
    data: dict[str, Any] = response.json()
    return int(data["code"]), str(data["message"])


def wait_for(condition: Any, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"condition not met within {timeout} s"
        time.sleep(0.02)


def otlp_settings(redis_url: str, stream: str, tmp_path: Path, shards: int = 1) -> OtlpSettings:
    producer = ProducerSettings(
        redis_url=redis_url, stream=stream, shards=shards, spool_dir=tmp_path / "spool"
    )
    return OtlpSettings(producer=producer)


def routed_events(client: Client, keys: Keys) -> int:
    """Every event is on the shard its routing id picks (the names as placed on this client)."""
    names = placed(keys, client).streams
    seen = 0
    for index, name in enumerate(names):
        for _, fields in client.xrange(name):
            event = decode(fields[STREAM_FIELD.encode()])
            assert names[keys.streams.index(keys.stream_for(routing_id(event)))] == names[index]
            seen += 1
    return seen
