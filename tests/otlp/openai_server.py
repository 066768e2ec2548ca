"""A local OpenAI-compatible server for the instrumentations' tests: canned answers the official
``openai`` client accepts, each with its usage, so the spans the instrumentations make carry real
token counts (cached and reasoning tokens included).

- ``POST /v1/chat/completions``: a plain answer; a ``tool_calls`` answer when the request offers
  tools and its last message is not a tool result; with ``stream: true``, Server-Sent Events whose
  last chunk carries the usage (the client asks with ``stream_options: {include_usage: true}``);
- ``POST /v1/responses``: the Responses API (some instrumentations report cache tokens only there).

The numbers differ from call to call (``Canned.next_usage``), so a sum that counted a call twice,
or missed one, is wrong. The model answered is the request's with a date suffix, as OpenAI's is.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

CREATED = 1_765_000_000


def answered_model(model: str) -> str:
    return f"{model}-2024-08-06"


@dataclass
class Canned:
    """The usage handed out, one call after another (thread-safe)."""

    calls: itertools.count[int] = field(default_factory=itertools.count)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next_usage(self) -> dict[str, int]:
        with self.lock:
            n = next(self.calls)
        prompt = 1_000 + 137 * n
        completion = 40 + 11 * n
        return {
            "prompt": prompt,
            "completion": completion,
            "cached": 512 + 64 * (n % 3),  # a part of the prompt
            "reasoning": 8 + 3 * n,  # a part of the completion
        }


def chat_usage(u: dict[str, int]) -> dict[str, Any]:
    return {
        "prompt_tokens": u["prompt"],
        "completion_tokens": u["completion"],
        "total_tokens": u["prompt"] + u["completion"],
        "prompt_tokens_details": {"cached_tokens": u["cached"], "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": u["reasoning"], "audio_tokens": 0},
    }


def chat_answer(request: dict[str, Any], u: dict[str, int], n: int) -> dict[str, Any]:
    messages = request.get("messages") or [{}]
    wants_tool = bool(request.get("tools")) and messages[-1].get("role") != "tool"
    message: dict[str, Any] = {"role": "assistant", "content": None if wants_tool else f"answer {n}"}
    if wants_tool:
        tool = request["tools"][0]["function"]["name"]
        message["tool_calls"] = [
            {
                "id": f"call_{n:04d}",
                "type": "function",
                "function": {"name": tool, "arguments": json.dumps({"path": "README.md"})},
            }
        ]
    return {
        "id": f"chatcmpl-{n:04d}",
        "object": "chat.completion",
        "created": CREATED + n,
        "model": answered_model(request["model"]),
        "system_fingerprint": "fp_local",
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": "tool_calls" if wants_tool else "stop",
            }
        ],
        "usage": chat_usage(u),
    }


def chat_chunks(request: dict[str, Any], u: dict[str, int], n: int) -> Iterator[dict[str, Any]]:
    base = {
        "id": f"chatcmpl-{n:04d}",
        "object": "chat.completion.chunk",
        "created": CREATED + n,
        "model": answered_model(request["model"]),
        "system_fingerprint": "fp_local",
    }
    yield {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}
    for word in ("streamed ", "answer ", str(n)):
        yield {**base, "choices": [{"index": 0, "delta": {"content": word}, "finish_reason": None}]}
    yield {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
    if (request.get("stream_options") or {}).get("include_usage"):
        yield {**base, "choices": [], "usage": chat_usage(u)}


def response_answer(request: dict[str, Any], u: dict[str, int], n: int) -> dict[str, Any]:
    return {
        "id": f"resp_{n:04d}",
        "object": "response",
        "created_at": CREATED + n,
        "status": "completed",
        "model": answered_model(request["model"]),
        "output": [
            {
                "type": "message",
                "id": f"msg_{n:04d}",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": f"response {n}", "annotations": []}],
            }
        ],
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": {
            "input_tokens": u["prompt"],
            "input_tokens_details": {"cached_tokens": u["cached"]},
            "output_tokens": u["completion"],
            "output_tokens_details": {"reasoning_tokens": u["reasoning"]},
            "total_tokens": u["prompt"] + u["completion"],
        },
    }


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # the test's output stays quiet
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        request = json.loads(body or b"{}")
        u = self.server.canned.next_usage()
        n = next(self.server.answers)
        if self.path == "/v1/chat/completions" and request.get("stream"):
            self._stream(chat_chunks(request, u, n))
        elif self.path == "/v1/chat/completions":
            self._json(200, chat_answer(request, u, n))
        elif self.path == "/v1/responses":
            self._json(200, response_answer(request, u, n))
        else:
            self._json(404, {"error": {"message": f"no route {self.path}", "type": "invalid_request_error"}})

    def _json(self, status: int, doc: dict[str, Any]) -> None:
        data = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _stream(self, chunks: Iterator[dict[str, Any]]) -> None:
        data = b"".join(f"data: {json.dumps(c)}\n\n".encode() for c in chunks) + b"data: [DONE]\n\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.canned = Canned()
        self.answers = itertools.count()


@contextmanager
def openai_server() -> Iterator[str]:
    """Serves on a free loopback port; yields the base URL the ``openai`` client takes (``.../v1``)."""
    server = _Server()
    thread = threading.Thread(target=server.serve_forever, name="openai-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
