"""Regression: a model that sent one megabyte-long delta held the event loop for seconds.

`answer()` handed each upstream delta to the chunker whole. The chunker is linear, but one call over
a 1 MB delta of "好。" (500,000 sentences) still took ~1.8 s with no chance for another request to
run. Deltas are now fed in pieces (`chunking.pieces`), so the chunks reach the sink, and the loop
turns, as they are found. Compared inside the test: the same text as one delta and as many small
deltas must hold the loop about equally long.
"""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from rhetor_stream.providers.base import ChatStream
from rhetor_stream.specialists.answer import answer
from rhetor_stream.specialists.roster import Specialist

TEXT = "好。" * 100_000  # 200,000 characters, 100,000 sentences


class _Service:
    """What `answer` needs of the specialist service, with a model that sends `deltas`."""

    def __init__(self, deltas: list[str]) -> None:
        self.deltas = deltas
        self.memory = self

    def ask(self, *args: Any) -> ChatStream:
        async def produce(chat: ChatStream) -> AsyncIterator[str]:
            for delta in self.deltas:
                yield delta
        return ChatStream(produce)

    def remember(self, *args: Any) -> None:
        pass

    def provider(self, specialist: Specialist) -> Any:
        return self

    name = "fake"

    def model(self, specialist: Specialist) -> str:
        return "fake-1"


async def _longest_stall(deltas: list[str]) -> float:
    """The longest time the loop did not turn while `answer` streamed `deltas` into a sink that,
    like a run's recorder, lets the loop turn every 64 chunks."""
    loop = asyncio.get_running_loop()
    longest = 0.0
    finished = False

    async def watch() -> None:
        nonlocal longest
        last = loop.time()
        while not finished:
            await asyncio.sleep(0)
            now = loop.time()
            longest = max(longest, now - last)
            last = now

    count = 0

    async def sink(chunk: str) -> None:
        nonlocal count
        count += 1
        if count % 64 == 0:
            await asyncio.sleep(0)

    watcher = asyncio.create_task(watch())
    await asyncio.sleep(0)
    specialist = Specialist(id="s", name="S", role="tester", description="", system_prompt="test")
    await answer(_Service(deltas), specialist, "hi", message_type="chat",  # type: ignore[arg-type]
                 chunk_size="sentence", on_chunk=sink)
    finished = True
    await watcher
    return longest


async def test_one_huge_delta_holds_the_loop_no_longer_than_many_small_ones() -> None:
    small = [TEXT[offset:offset + 64] for offset in range(0, len(TEXT), 64)]
    baseline = min([await _longest_stall(small) for _ in range(2)])
    huge = min([await _longest_stall([TEXT]) for _ in range(2)])
    assert huge <= 20 * max(baseline, 0.002), f"one delta stalled {huge:.3f} s, small ones {baseline:.3f} s"
