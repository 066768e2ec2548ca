"""Connection URLs as they may be printed: the password masked (redis://, rediss://, postgresql://,
and a ``password=`` query parameter). Shared by the producer and the workers, for logs and output."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

_USERINFO = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^/@:]*):[^/@]*@")
_QUERY = re.compile(r"(?i)([?&](?:password|sslpassword)=)[^&]*")


def mask_url(url: str) -> str:
    """``url`` with any password replaced by ``***``; the user, host and the rest kept."""
    masked = _USERINFO.sub(r"\g<scheme>\g<user>:***@", url)
    return _QUERY.sub(r"\1***", masked)


def mask_webhook_url(url: str) -> str:
    """A webhook URL as it may be printed: its scheme, host and port only; the user, path and query
    (where Slack and most webhooks keep their token) replaced by ``***``."""
    parts = urlsplit(url)
    if not parts.scheme or not parts.hostname:
        return "***"
    port = f":{parts.port}" if parts.port else ""
    hidden = "/***" if (parts.path.strip("/") or parts.query or parts.username) else ""
    return f"{parts.scheme}://{parts.hostname}{port}{hidden}"
