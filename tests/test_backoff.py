"""The one backoff helper: pauses grow by the factor up to the cap, jitter only stretches them, and a
success starts over. No clock and no chance: the random source and the sleep are injected."""
from __future__ import annotations

import pytest

from rhetor_stream.backoff import Backoff


def pauses(backoff: Backoff, count: int) -> list[float]:
    return [round(backoff.next(), 6) for _ in range(count)]


def test_pauses_double_up_to_the_cap() -> None:
    backoff = Backoff(0.1, 1.0, rand=lambda: 0.0)
    assert pauses(backoff, 6) == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]


def test_the_factor_sets_the_growth() -> None:
    assert pauses(Backoff(1.0, 100.0, factor=3.0, rand=lambda: 0.0), 4) == [1.0, 3.0, 9.0, 27.0]


def test_jitter_stretches_each_pause_by_up_to_its_share() -> None:
    assert pauses(Backoff(1.0, 2.0, jitter=0.25, rand=lambda: 0.999999), 3) == pytest.approx([1.25, 2.5, 2.5])
    assert pauses(Backoff(1.0, 2.0, jitter=0.25, rand=lambda: 0.5), 3) == [1.125, 2.25, 2.25]
    assert pauses(Backoff(1.0, 2.0, jitter=0.0, rand=lambda: 0.999999), 2) == [1.0, 2.0]


def test_reset_starts_over_after_a_success() -> None:
    backoff = Backoff(0.5, 5.0, rand=lambda: 0.0)
    assert pauses(backoff, 3) == [0.5, 1.0, 2.0]
    backoff.reset()
    assert pauses(backoff, 2) == [0.5, 1.0]


def test_a_cap_below_the_first_pause_is_the_first_pause() -> None:
    assert pauses(Backoff(2.0, 1.0, rand=lambda: 0.0), 2) == [2.0, 2.0]


async def test_wait_sleeps_the_pause_it_returns() -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    draws = iter([0.0, 1.0, 0.5])
    backoff = Backoff(0.2, 10.0, jitter=0.5, rand=lambda: next(draws), sleep=sleep)
    waited = [await backoff.wait() for _ in range(3)]
    assert waited == slept == pytest.approx([0.2, 0.6, 1.0])
