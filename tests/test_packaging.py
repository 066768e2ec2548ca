"""An installed wheel finds schema.sql: worker/schema.sql is the top-level file (a symlink in a
checkout, copied into the wheel as package data). A `pip install .` once shipped without it."""

from __future__ import annotations

import tomllib
from pathlib import Path

from worker.schema import schema_path

ROOT = Path(__file__).resolve().parent.parent


def test_the_packaged_schema_is_the_top_level_one() -> None:
    assert (ROOT / "worker" / "schema.sql").read_bytes() == (ROOT / "schema.sql").read_bytes()
    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert "schema.sql" in package_data["worker"]
    assert schema_path().read_bytes() == (ROOT / "schema.sql").read_bytes()


def test_the_wheel_ships_every_dashboard_asset() -> None:
    """Every file under worker/read/static matches a package-data pattern (else the wheel lacks it)."""
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"][
        "worker.read"
    ]
    package = ROOT / "worker" / "read"
    files = [p.relative_to(package) for p in (package / "static").rglob("*") if p.is_file()]
    assert {"static/index.html", "static/dashboard.js", "static/vendor/uPlot.iife.min.js"} <= {
        str(f) for f in files
    }
    unshipped = [str(f) for f in files if not any(f.match(p) for p in patterns)]
    assert unshipped == []
