"""Unit tests for the backoff object (no sleeping)."""

from __future__ import annotations

import random

import pytest

from twitchio_pubsub.backoff import Backoff


def test_delays_double_up_to_the_cap_with_full_jitter() -> None:
    backoff = Backoff(1.0, 120.0, rng=random.Random(7))
    ceilings = []
    for _ in range(12):
        ceilings.append(backoff.ceiling())
        delay = backoff.next_delay()
        assert 0.1 <= delay <= ceilings[-1]
    assert ceilings[:8] == [1, 2, 4, 8, 16, 32, 64, 120]
    assert ceilings[8:] == [120] * 4


def test_jitter_spreads_delays() -> None:
    delays = set()
    for seed in range(50):
        b = Backoff(1.0, 120.0, rng=random.Random(seed))
        for _ in range(5):
            b.next_delay()
        delays.add(round(b.next_delay(), 3))
    assert len(delays) > 40


def test_reset_starts_over() -> None:
    backoff = Backoff(2.0, 60.0, rng=random.Random(1))
    for _ in range(10):
        backoff.next_delay()
    assert backoff.attempt == 10
    backoff.reset()
    assert backoff.attempt == 0
    assert backoff.ceiling() == 2.0


def test_never_overflows() -> None:
    backoff = Backoff(1.0, 120.0, rng=random.Random(0))
    for _ in range(10_000):
        assert backoff.next_delay() <= 120.0


@pytest.mark.parametrize(("base", "cap"), [(0, 1), (-1, 1), (2, 1)])
def test_bad_arguments(base: float, cap: float) -> None:
    with pytest.raises(ValueError):
        Backoff(base, cap)
