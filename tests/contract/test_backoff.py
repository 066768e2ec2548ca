"""The one backoff (contract/backoff.py): the producer's doubling with 50-100 % jitter, the
worker's full jitter, and the patience of a burst run."""

from __future__ import annotations

from contract.backoff import Backoff, Patience, full_jitter


def test_the_delay_doubles_up_to_the_maximum_and_reset_starts_over() -> None:
    backoff = Backoff(0.1, 0.5, jitter=lambda: 1.0)
    assert [round(backoff.failed(10.0) - 10.0, 3) for _ in range(5)] == [0.1, 0.2, 0.4, 0.5, 0.5]
    backoff.reset()
    assert backoff.failed(0.0) == 0.1


def test_the_jitter_spreads_attempts_over_half_to_all_of_the_delay() -> None:
    delays = [Backoff(1.0, 1.0).failed(0.0) for _ in range(200)]
    assert 0.5 <= min(delays) < max(delays) <= 1.0


def test_full_jitter_spreads_attempts_over_the_whole_delay_up_to_the_cap() -> None:
    """The worker's policy: 0-100 % of a delay that doubles from 0.1 s and stops at 5 s."""
    backoff = Backoff(0.1, 5.0, full_jitter)
    first = [Backoff(0.1, 5.0, full_jitter).failed(0.0) for _ in range(400)]
    assert 0.0 <= min(first) < 0.02 and 0.08 < max(first) <= 0.1
    late = [backoff.failed(0.0) for _ in range(400)][20:]  # long past the cap
    assert max(late) <= 5.0 and min(late) < 0.5 and max(late) > 4.0


def test_patience_counts_from_the_first_failure_in_a_row() -> None:
    patience = Patience(limit=10.0)
    assert patience.exhausted(100.0) is None
    assert patience.exhausted(105.0) is None
    assert patience.exhausted(110.5) == 10.5
    patience.reset()
    assert patience.exhausted(200.0) is None
    assert Patience(limit=None).exhausted(1e9) is None
