"""Passwords in connection URLs are masked wherever the project prints a URL or its settings."""

from __future__ import annotations

import pytest

from contract.urls import mask_url
from producer import ProducerSettings
from worker.settings import WorkerSettings


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:s3cret@host:6379/0", "redis://:***@host:6379/0"),
        (
            "rediss://metrics-worker:s3cret@host:6380/0?ssl_ca_certs=/ca.pem",
            "rediss://metrics-worker:***@host:6380/0?ssl_ca_certs=/ca.pem",
        ),
        (
            "postgresql://app:p%40ss:w@db:5432/m?sslmode=verify-full",
            "postgresql://app:***@db:5432/m?sslmode=verify-full",
        ),
        (
            "postgresql://db/m?user=app&password=s3cret&sslmode=require",
            "postgresql://db/m?user=app&password=***&sslmode=require",
        ),
        ("redis://host:6379/0", "redis://host:6379/0"),
        ("postgresql://app@db/m", "postgresql://app@db/m"),
    ],
)
def test_mask_url(url: str, shown: str) -> None:
    assert mask_url(url) == shown
    assert "s3cret" not in mask_url(url)


def test_settings_reprs_show_no_url() -> None:
    worker = WorkerSettings(database_url="postgresql://a:s3cret@db/m", redis_url="redis://:s3cret@r/0")
    producer = ProducerSettings(redis_url="redis://:s3cret@r/0")
    assert "s3cret" not in repr(worker) and "s3cret" not in repr(producer)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://hooks.slack.com/services/T000/B000/XXXXSECRET", "https://hooks.slack.com/***"),
        ("http://127.0.0.1:8080/hook?token=s3cret", "http://127.0.0.1:8080/***"),
        ("https://user:pw@example.com", "https://example.com/***"),
        ("https://example.com", "https://example.com"),
        ("not a url", "***"),
    ],
)
def test_a_webhook_url_shows_its_host_only(url: str, shown: str) -> None:
    from contract.urls import mask_webhook_url

    assert mask_webhook_url(url) == shown
    assert "SECRET" not in shown and "s3cret" not in shown
