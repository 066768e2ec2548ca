"""The sender's backoff: one policy for both retry paths (a failed send, a failed probe)."""

from __future__ import annotations

from producer.delivery import Backoff


def test_the_delay_doubles_up_to_the_maximum_and_reset_starts_over() -> None:
    backoff = Backoff(0.1, 0.5, jitter=lambda: 1.0)
    assert [round(backoff.failed(10.0) - 10.0, 3) for _ in range(5)] == [0.1, 0.2, 0.4, 0.5, 0.5]
    backoff.reset()
    assert backoff.failed(0.0) == 0.1


def test_the_jitter_spreads_attempts_over_half_to_all_of_the_delay() -> None:
    delays = [Backoff(1.0, 1.0).failed(0.0) for _ in range(200)]
    assert 0.5 <= min(delays) < max(delays) <= 1.0
