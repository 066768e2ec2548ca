"""An installed wheel finds schema.sql: worker/schema.sql is the top-level file (a symlink in a
checkout, copied into the wheel as package data). A `pip install .` once shipped without it."""

from __future__ import annotations

import subprocess
import sys
import tomllib
import venv
import zipfile
from pathlib import Path

import pytest

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


@pytest.mark.acceptance
def test_the_readmes_wheel_installs_the_console_scripts_into_the_environments_bin(tmp_path: Path) -> None:
    """README, step 1: `python3 -m pip wheel --no-deps -w dist .`, then pip install it; the scripts
    land in that environment's bin folder. (--no-deps: the dependencies are PyPI's, not ours.)"""
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path / "dist"), str(ROOT)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("agent_metrics_pipeline-*-py3-none-any.whl")
    venv.EnvBuilder(with_pip=True).create(tmp_path / "env")
    installed = subprocess.run(
        [str(tmp_path / "env" / "bin" / "pip"), "install", "-q", "--no-deps", str(wheel)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stderr[-2000:]
    for script in ("metrics-worker", "metrics-producer", "metrics-api", "metrics-otlp"):
        assert (tmp_path / "env" / "bin" / script).exists(), script
    with zipfile.ZipFile(wheel) as archive:
        assert "worker/schema.sql" in archive.namelist()  # metrics-worker schema works from a wheel
        shipped = set(archive.namelist())
    package = ROOT / "worker" / "read"
    assets = {f"worker/read/{p.relative_to(package)}" for p in (package / "static").rglob("*") if p.is_file()}
    assert assets and assets <= shipped  # the dashboard works from a wheel
