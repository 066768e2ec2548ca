"""Connection URLs as they may be printed: the password masked (redis://, rediss://, postgresql://,
and a ``password=`` query parameter). Shared by the producer and the workers, for logs and output."""

from __future__ import annotations

import re

_USERINFO = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^/@:]*):[^/@]*@")
_QUERY = re.compile(r"(?i)([?&](?:password|sslpassword)=)[^&]*")


def mask_url(url: str) -> str:
    """``url`` with any password replaced by ``***``; the user, host and the rest kept."""
    masked = _USERINFO.sub(r"\g<scheme>\g<user>:***@", url)
    return _QUERY.sub(r"\1***", masked)
