"""API tokens: who may read ``/v1/*`` (and so the dashboard's data).

Tokens come from ``METRICS_API_TOKENS`` (comma-separated) and/or the file named by
``METRICS_API_TOKENS_FILE`` (one a line; blank lines and ``#`` comments ignored). With none, the
API is open, which ``metrics-api`` allows only on a loopback address unless told ``--no-auth``.
A request carries ``Authorization: Bearer <token>``; it is compared with every token in constant
time (contract/tokens.py, shared with ``metrics-otlp``'s ingest tokens), and a refusal is a 401 with
``WWW-Authenticate`` that says nothing about which tokens exist. Tokens are never logged.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated

from fastapi import HTTPException, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from contract.tokens import MIN_TOKEN_LENGTH, TokenCheck, TokenError, is_loopback, read_tokens

__all__ = [
    "MIN_TOKEN_LENGTH",
    "TOKENS_FILE_VARIABLE",
    "TOKENS_VARIABLE",
    "TokenCheck",
    "TokenError",
    "is_loopback",
    "require_token",
    "startup_tokens",
    "tokens_from_env",
]

TOKENS_VARIABLE = "METRICS_API_TOKENS"
TOKENS_FILE_VARIABLE = "METRICS_API_TOKENS_FILE"
REALM = 'Bearer realm="metrics-api"'


def tokens_from_env(env: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """Every read token configured in ``env`` (default: os.environ); empty when none is. Raises TokenError."""
    return read_tokens(TOKENS_VARIABLE, TOKENS_FILE_VARIABLE, env)


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
