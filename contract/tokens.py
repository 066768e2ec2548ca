"""Bearer tokens, read and compared the same way by every server of the project: ``metrics-api``'s
read tokens (``METRICS_API_TOKENS``) and ``metrics-otlp``'s ingest tokens
(``METRICS_INGEST_TOKENS``), two separate sets under two pairs of variables.

A pair is a comma-separated variable and a file variable (one token a line; blank lines and ``#``
comments ignored). A candidate is compared with every token in constant time (digests of equal
length, every token compared). Tokens are never logged. Here, not in worker/read, because the
producer's receiver needs the same rules and may not import the worker.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
from collections.abc import Iterable, Mapping

#: Shorter tokens can be guessed; secrets.token_urlsafe(32) gives 43 characters.
MIN_TOKEN_LENGTH = 16


class TokenError(ValueError):
    """A token setting that cannot be used: names the variable and the reason, never the token."""


def _checked(tokens: Iterable[str], where: str) -> list[str]:
    out = []
    for number, token in enumerate(tokens, start=1):
        if len(token) < MIN_TOKEN_LENGTH or any(c.isspace() or c == "," for c in token):
            raise TokenError(
                f"{where}: token {number} is {len(token)} characters or contains a space or comma; "
                f"use at least {MIN_TOKEN_LENGTH} characters without either, e.g. "
                "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"
            )
        out.append(token)
    return out


def read_tokens(variable: str, file_variable: str, env: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """Every token configured under ``variable`` and ``file_variable`` in ``env`` (default:
    os.environ); empty when none is. Raises TokenError."""
    e = os.environ if env is None else env
    tokens = _checked([t.strip() for t in e.get(variable, "").split(",") if t.strip()], variable)
    path = e.get(file_variable)
    if path:
        try:
            with open(path, encoding="utf-8") as file:
                lines = [line.strip() for line in file]
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise TokenError(f"{file_variable}: cannot read {path!r}: {reason}") from None
        found = _checked([t for t in lines if t and not t.startswith("#")], f"{file_variable} {path}")
        if not found:
            raise TokenError(f"{file_variable}: {path!r} holds no token (one a line, # for comments)")
        tokens += found
    return tuple(tokens)


class TokenCheck:
    """The configured tokens as digests; ``matches`` costs the same whatever the candidate."""

    def __init__(self, tokens: Iterable[str]) -> None:
        self._digests = [hashlib.sha256(t.encode()).digest() for t in tokens]

    @property
    def enabled(self) -> bool:
        return bool(self._digests)

    def matches(self, candidate: str) -> bool:
        digest = hashlib.sha256(candidate.encode("utf-8", "surrogateescape")).digest()
        # Compare with all of them, no early exit: the time says nothing about which one matched.
        return sum(hmac.compare_digest(digest, known) for known in self._digests) > 0


def bearer(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header (the scheme in any case); None
    for no header or another scheme."""
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def is_loopback(host: str) -> bool:
    """Whether listening on ``host`` keeps a server on this machine (``localhost`` or a loopback address)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to a public address
