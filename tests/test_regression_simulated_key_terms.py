"""Regression: the simulated provider's key-term extraction was quadratic in the message.

Each word was compared with every word kept before it (`w.lower() for w in words` inside the loop):
a specialist message of 16,000 distinct words held the event loop for ~12 s. The cost of composing
an answer is compared at n and 16n distinct words inside this test: at most 32 times as much, twice
what linear costs (the quadratic code measured 256x; linear measures 12-22x on a busy machine).
"""
from __future__ import annotations

from rhetor_stream.providers.base import ChatMessage, ChatRequest
from rhetor_stream.providers.simulated import SimulatedProvider
from tests.cpu_cost import clock, no_collector

N = 500
GROWTH = 16
MAX_RATIO = 32
TRIES = 5


def _request(words: int) -> ChatRequest:
    message = " ".join(f"term{index:06d}x" for index in range(words))
    return ChatRequest((ChatMessage("system", "You are Planner, the team's planner.\nTask type: chat"),
                        ChatMessage("user", message)), model="simulated-1")


def _cost(provider: SimulatedProvider, request: ChatRequest, repeat: int = 1) -> float:
    with no_collector():
        started = clock()
        for _ in range(repeat):
            provider.compose(request)
        return (clock() - started) / repeat


def test_composing_grows_linearly_with_distinct_words() -> None:
    provider = SimulatedProvider(tokens_per_s=1000.0)
    small, large = _request(N), _request(GROWTH * N)
    small_cost = large_cost = float("inf")
    for _ in range(TRIES):
        small_cost = min(small_cost, _cost(provider, small, GROWTH))
        large_cost = min(large_cost, _cost(provider, large))
        if large_cost <= MAX_RATIO * small_cost:
            break
    assert large_cost <= MAX_RATIO * small_cost, (
        f"{GROWTH}x the words cost {large_cost / small_cost:.0f}x ({small_cost * 1e3:.2f} ms, "
        f"{large_cost * 1e3:.2f} ms)")


def test_the_terms_are_still_the_longest_distinct_words_in_order() -> None:
    request = ChatRequest((ChatMessage("user", "Idempotency first: idempotency, IDEMPOTENCY, jitter "
                                                "and backoff"),), model="simulated-1")
    answer = SimulatedProvider(tokens_per_s=1000.0).compose(request)
    assert "Idempotency, jitter, backoff" in answer  # one word whatever its case, in message order
