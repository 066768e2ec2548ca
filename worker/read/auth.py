"""API tokens: who may read ``/v1/*`` (and so the dashboard's data).

Tokens come from ``METRICS_API_TOKENS`` (comma-separated) and/or the file named by
``METRICS_API_TOKENS_FILE`` (one a line; blank lines and ``#`` comments ignored). With none, the
API is open, which ``metrics-api`` allows only on a loopback address unless told ``--no-auth``.
A request carries ``Authorization: Bearer <token>``; it is compared with every token in constant
time (digests of equal length, every token compared), and a refusal is a 401 with
``WWW-Authenticate`` that says nothing about which tokens exist. Tokens are never logged.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
from collections.abc import Iterable, Mapping
from typing import Annotated

from fastapi import HTTPException, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

TOKENS_VARIABLE = "METRICS_API_TOKENS"
TOKENS_FILE_VARIABLE = "METRICS_API_TOKENS_FILE"
#: Shorter tokens can be guessed; secrets.token_urlsafe(32) gives 43 characters.
MIN_TOKEN_LENGTH = 16
REALM = 'Bearer realm="metrics-api"'


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


def tokens_from_env(env: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """Every token configured in ``env`` (default: os.environ); empty when none is. Raises TokenError."""
    e = os.environ if env is None else env
    tokens = _checked(
        [t.strip() for t in e.get(TOKENS_VARIABLE, "").split(",") if t.strip()], TOKENS_VARIABLE
    )
    path = e.get(TOKENS_FILE_VARIABLE)
    if path:
        try:
            with open(path, encoding="utf-8") as file:
                lines = [line.strip() for line in file]
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise TokenError(f"{TOKENS_FILE_VARIABLE}: cannot read {path!r}: {reason}") from None
        found = _checked([t for t in lines if t and not t.startswith("#")], f"{TOKENS_FILE_VARIABLE} {path}")
        if not found:
            raise TokenError(f"{TOKENS_FILE_VARIABLE}: {path!r} holds no token (one a line, # for comments)")
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


#: Declares the scheme in the OpenAPI document (Swagger UI's "Authorize"); the check is ours.
_bearer = HTTPBearer(auto_error=False, description="An API token (METRICS_API_TOKENS)")


def require_token(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)]
) -> None:
    """FastAPI dependency: a 401 unless the request carries one of the app's tokens (when it has any)."""
    check: TokenCheck = request.app.state.token_check
    if not check.enabled:
        return
    if credentials is None:
        raise HTTPException(
            status_code=401,
            detail="a token is required: send the header Authorization: Bearer <token>",
            headers={"WWW-Authenticate": REALM},
        )
    if not check.matches(credentials.credentials.strip()):
        raise HTTPException(
            status_code=401,
            detail="the token was refused",
            headers={"WWW-Authenticate": f'{REALM}, error="invalid_token"'},
        )


def is_loopback(host: str) -> bool:
    """Whether listening on ``host`` keeps the API on this machine (``localhost`` or a loopback address)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to a public address


def startup_tokens(host: str, *, no_auth: bool) -> tuple[str, ...]:
    """The tokens to serve with on ``host``. Raises TokenError (one line, why and what to do) for an
    open API on a non-loopback address without ``no_auth``, or an unusable token setting."""
    tokens = tokens_from_env()
    if not tokens and not no_auth and not is_loopback(host):
        raise TokenError(
            f"refusing to serve the reads on {host}, a non-loopback address, without API tokens: "
            f"set {TOKENS_VARIABLE} (or {TOKENS_FILE_VARIABLE}), or pass --no-auth to serve them open"
        )
    return tokens
