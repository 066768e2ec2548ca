"""HTTP client spans -> forward.started and forward.completed: the outermost HTTP client span
under a GenAI span of the request (not a tool's), with that span's model, provider, session and
round. An HTTP span under no GenAI span of the request is not a model API call we can tell: no
event.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

from contract.events import MAX_NAME_LENGTH
from producer.otlp import attributes as attrs
from producer.otlp import build
from producer.otlp.attributes import Refused
from producer.otlp.build import Wire, check_times
from producer.otlp.ids import entity_id
from producer.otlp.sessions import Sessions
from producer.otlp.spans import Span
from producer.otlp.tree import Tree


def forward_events(span: Span, tree: Tree, sessions: Sessions) -> tuple[Wire, ...]:
    """The forward an HTTP client span is, or nothing."""
    anchor = _genai_above(span, tree)
    if anchor is None:
        return ()
    anchor_role = tree.role_of(anchor)
    try:
        found = attrs.model(anchor.attributes)
    except Refused:
        return ()  # the anchor itself is refused for it, naming the attribute
    if anchor_role == attrs.TOOL or found is None:
        return ()  # a tool's own requests, or a GenAI span that names no model: not forwards
    a = span.attributes
    endpoint, endpoint_key = endpoint_of(a)
    if endpoint is None:
        return ()
    check_times(span)
    model = found[0]
    provider = attrs.provider(anchor.attributes)
    session_id = sessions.of(anchor)[0]
    is_round = anchor_role == attrs.ROUND
    code = a.get("http.response.status_code", a.get("http.status_code"))
    code = code if isinstance(code, int) and not isinstance(code, bool) and 100 <= code <= 599 else None
    if attrs.timed_out(span):
        status = "timeout"
    elif (code is not None and code >= 400) or attrs.failed(span):
        status = "error"
    else:
        status = "success"
    usage = build.usage(attrs.usage(a, provider, model)) if attrs.has_usage(a) else None
    forward_id = entity_id(span.trace_id, span.span_id)
    endpoint = build.name(endpoint, endpoint_key)
    err = build.error(attrs.error_text(span)) if status != "success" else None
    round_id = entity_id(anchor.trace_id, anchor.span_id) if is_round else None
    is_stream = attrs.streamed(anchor) if is_round else False
    started = build.forward_started(
        span, forward_id, endpoint, model, is_stream, provider, session_id, round_id
    )
    completed = build.forward_completed(span, forward_id, status, code, usage, err)
    return (started, completed)


def _genai_above(span: Span, tree: Tree) -> Span | None:
    """The nearest GenAI ancestor of an HTTP span, or None (also when an HTTP span is nearer:
    the outermost HTTP client span is the forward)."""
    for above in tree.ancestors(span):
        role = tree.role_of(above)
        if role == attrs.HTTP:
            return None
        if role != attrs.NONE:
            return above
    return None


def endpoint_of(a: Mapping[str, Any]) -> tuple[str | None, str]:
    """The forward's endpoint, (text, attribute): ``url.full`` (or the older ``http.url``) without
    its query, fragment and credentials (a query may hold an API key); else ``server.address``
    with ``server.port`` and ``url.path``. Cut to the contract's maximum."""
    for key in ("url.full", "http.url"):
        url = a.get(key)
        if isinstance(url, str) and url:
            # Only short URLs are cached: the cache's memory stays bounded whatever is sent.
            endpoint = _from_url(url) if len(url) <= _CACHED_URL else _from_url.__wrapped__(url)
            if endpoint is not None:
                return endpoint, key
    host = a.get("server.address", a.get("net.peer.name"))
    if not isinstance(host, str) or not host:
        return None, "url.full"
    port = a.get("server.port", a.get("net.peer.port"))
    path = a.get("url.path", a.get("http.target"))
    path = path.split("?", 1)[0] if isinstance(path, str) and path else "/"
    netloc = f"{host}:{port}" if isinstance(port, int) and port not in (80, 443) else host
    return f"{netloc}{path}"[:MAX_NAME_LENGTH], "server.address"


_CACHED_URL = 2048


@lru_cache(maxsize=1024)
def _from_url(url: str) -> str | None:
    """``url`` without its query, fragment and credentials, or None when it does not parse. Cached:
    an agent's forwards go to a few URLs, and urlsplit costs a tenth of a forward's mapping."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{port}" if port else host
    scheme = f"{parts.scheme}://" if parts.scheme else ""
    return f"{scheme}{netloc}{parts.path or '/'}"[:MAX_NAME_LENGTH]
