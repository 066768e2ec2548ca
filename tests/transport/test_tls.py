"""rediss:// and PostgreSQL sslmode=verify-full, against servers that speak nothing but TLS, with a
certificate authority the test makes: a producer publishes and a worker applies."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest
import redis

from producer import Publisher
from tests.ingest.helpers import drain, settings
from tests.transport.servers import Authority, make_authority, tls_postgres, tls_redis


@pytest.fixture(scope="module")
def authority(tmp_path_factory: pytest.TempPathFactory) -> Authority:
    return make_authority(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="module")
def redis_tls(authority: Authority, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    with tls_redis(authority, tmp_path_factory.mktemp("redis")) as port:
        yield port


@pytest.fixture(scope="module")
def postgres_tls(authority: Authority) -> Iterator[int]:
    with tls_postgres(authority) as port:
        yield port


def rediss_url(port: int, ca: Path) -> str:
    return f"rediss://localhost:{port}/0?ssl_cert_reqs=required&ssl_ca_certs={quote(str(ca))}"


def postgres_url(port: int, ca: Path, host: str = "localhost") -> str:
    return f"postgresql://postgres@{host}:{port}/postgres?sslmode=verify-full&sslrootcert={quote(str(ca))}"


def test_a_producer_and_a_worker_over_tls_only(
    authority: Authority, redis_tls: int, postgres_tls: int, tmp_path: Path
) -> None:
    redis_url, db_url = rediss_url(redis_tls, authority.ca), postgres_url(postgres_tls, authority.ca)
    with Publisher(redis_url=redis_url, stream="tls:events", spool_dir=str(tmp_path / "spool")) as pub:
        with pub.session("gpt-4o", session_id="s-tls") as session, session.round() as r:
            r.usage(prompt_tokens=3, completion_tokens=4)
        assert pub.flush(10)
        stats = pub.stats()
    assert stats["sent"] == 4 and stats["spooled"] == 0, stats
    drain(settings(db_url, redis_url, "tls"))
    with psycopg.connect(db_url) as conn:
        assert conn.info.pgconn.ssl_in_use
        row = conn.execute("SELECT status, total_rounds, total_tokens FROM session_metrics").fetchone()
    assert row == ("completed", 1, 7)


def test_verification_is_real(authority: Authority, redis_tls: int, postgres_tls: int) -> None:
    with pytest.raises(redis.ConnectionError, match="certificate verify failed"):
        redis.Redis.from_url(rediss_url(redis_tls, authority.stranger)).ping()
    with pytest.raises(redis.ConnectionError):
        redis.Redis.from_url(f"redis://localhost:{redis_tls}/0", socket_timeout=2).ping()  # no TLS
    with pytest.raises(psycopg.OperationalError, match="certificate verify failed"):
        psycopg.connect(postgres_url(postgres_tls, authority.stranger))
    with pytest.raises(psycopg.OperationalError, match=r"no encryption|reject"):
        psycopg.connect(f"postgresql://postgres@localhost:{postgres_tls}/postgres?sslmode=disable")
    # verify-full checks the name too: the certificate is for localhost and 127.0.0.1 only
    with pytest.raises(psycopg.OperationalError, match="does not match"):
        psycopg.connect(
            postgres_url(postgres_tls, authority.ca, host="not-localhost") + "&hostaddr=127.0.0.1"
        )
