"""Regression: the simulated provider's answer grew with the message.

It repeats the message's longest words and the last speaker's name: one 1 MB word made a 3 MB
answer, and a team chat sends every answer to every later turn, so a 41-turn chat built gigabytes
of prompts. The answer now names long words shortened, so its size does not depend on the message.
"""
from __future__ import annotations

import pytest

from rhetor_stream.providers.base import ChatMessage, ChatRequest
from rhetor_stream.providers.simulated import SimulatedProvider


def _answer(message: str) -> str:
    request = ChatRequest((ChatMessage("system", "You are Critic, the team's critic.\nTask type: chat"),
                           ChatMessage("user", message)), model="simulated-1")
    return SimulatedProvider(tokens_per_s=1000.0).compose(request)


@pytest.mark.parametrize("message", [
    "Review " + "A" * 100_000,
    "x" * 100_000 + ": said something long",
    "Team discussion topic: " + "Long" * 25_000 + "\n\nSaid so far:\n" + "planner" * 10_000 + ": hello",
])
def test_the_answer_does_not_grow_with_the_message(message: str) -> None:
    short = _answer(message[:200])
    assert len(_answer(message)) <= len(short) + 200


def test_a_long_word_is_named_shortened() -> None:
    answer = _answer("Review " + "Supercalifragilistic" * 10)
    assert "Supercalifragilistic" in answer and "Supercalifragilistic" * 3 not in answer
