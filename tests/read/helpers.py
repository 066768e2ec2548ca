"""Helpers shared by the read side's tests: plain functions, no fixtures."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported for the type only: the module itself warns on import
    from fastapi.testclient import TestClient


def v1_paths(client: TestClient) -> list[str]:
    """Every /v1 route the app documents, with a session that exists for the detail."""
    paths = [p for p in client.get("/openapi.json").json()["paths"] if p.startswith("/v1/")]
    assert len(paths) >= 9
    return [p.replace("{session_id}", "s010") for p in paths]
