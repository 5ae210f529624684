"""Regression: the chunker did super-linear work on hostile text, on the event loop.

`StreamText` with "." * 16000 blocked every other request for ~11 s and one 1 MB word for ~30 s:
a run of terminators made the sentence regex backtrack at every position, the max-chars valve
searched the whole buffer again for every cut, and each cut copied what was left. A model printing
"......" a token at a time re-read everything pending on every delta.

Each case runs at size n and 16n in one test and compares CPU times (best of a few runs): 16 times
the text may cost at most 32 times as much, twice what linear costs (quadratic is 256x; linear
measures 12-22x on a busy machine, and a bound of 20x failed about one CI run in ten). The large
run gives up as soon as it is over budget, so the old code fails in seconds instead of minutes.
"""
from __future__ import annotations

from collections.abc import Callable

import pytest

from rhetor_stream.chunking import Chunker
from tests.cpu_cost import clock, no_collector

N = 2000  # at least max_chars (2000): both sizes then reach the chunker's steady state (a full window)
GROWTH = 16
MAX_RATIO = 32
TRIES = 5

TEXTS: dict[str, Callable[[int], str]] = {
    "terminator run": lambda n: "." * n,
    "one huge word": lambda n: "A" * n,
    "mixed CJK and latin terminators": lambda n: ("。.！!？?…" * n)[:n],
    "closers after a dot": lambda n: "It ended." + ")\"」’" * (n // 4),
    "spaces after a dot": lambda n: "It ended." + " " * n,
    "blank lines": lambda n: "Heading" + "\r\n \n" * (n // 4),
    "abbreviations": lambda n: "Dr. " * (n // 4),
    "opening brackets": lambda n: "(" * n + "dr. Who",
    "sentences": lambda n: "Yes. " * (n // 5),
    "CJK sentences": lambda n: "好。" * (n // 2),
}


class OverBudget(Exception):
    pass


def _feed(text: str, mode: str, step: int, deadline: float) -> None:
    chunker = Chunker(mode)
    for start in range(0, len(text), step):
        chunker.feed(text[start:start + step])
        if clock() > deadline:
            raise OverBudget
    chunker.flush()


def _cost(text: str, mode: str, step: int, budget: float = float("inf")) -> float:
    """CPU time of one run; infinite once it goes over `budget`."""
    with no_collector():
        started = clock()
        try:
            _feed(text, mode, step, started + budget)
        except OverBudget:
            return float("inf")
        return clock() - started


MODES = ("sentence", "paragraph", "word")
# Every text in every mode in one delta; the texts that once made each delta re-read everything
# pending, one character at a time (as a model printing "......" token by token does).
CASES = [(kind, mode, "whole") for kind in TEXTS for mode in MODES] + [
    (kind, mode, "one character at a time") for kind, mode in [
        ("terminator run", "sentence"), ("terminator run", "paragraph"), ("terminator run", "word"),
        ("one huge word", "sentence"), ("mixed CJK and latin terminators", "sentence"),
        ("closers after a dot", "sentence"), ("spaces after a dot", "sentence"),
        ("blank lines", "paragraph"), ("abbreviations", "sentence")]]


@pytest.mark.parametrize("kind, mode, delta", CASES)
def test_cost_grows_linearly(kind: str, mode: str, delta: str) -> None:
    make = TEXTS[kind]
    small, large = make(N), make(GROWTH * N)
    step = 1 if delta != "whole" else len(large)
    small_cost = large_cost = float("inf")
    for _ in range(TRIES):  # the least of a few runs each, interleaved, to see past a busy machine
        # The small text is run GROWTH times over, so both sides read as much text.
        small_cost = min(small_cost, sum(_cost(small, mode, step) for _ in range(GROWTH)) / GROWTH)
        budget = MAX_RATIO * max(small_cost, 1e-6)
        large_cost = min(large_cost, _cost(large, mode, step, budget))
        if large_cost <= budget:
            return
    pytest.fail(f"{kind} ({mode}, {delta}): {GROWTH}x the text cost more than {MAX_RATIO}x "
                f"(small {small_cost * 1e3:.3f} ms, large over {budget * 1e3:.2f} ms)")
