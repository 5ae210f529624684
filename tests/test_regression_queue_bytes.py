"""Regression: a stream's queue was bounded in events, not bytes.

`GET /stream/test?size=1048576` held ~594 MiB for one fast reader and 1.6 GB for three stuck ones: the
queue took 256 events of any size and the writer joined all of them into one write. Now the queue
also stops at `--queue-bytes` (the event that crosses it is the last one in), and no write is larger
than that (or than one frame, if a single event is bigger).
"""
from __future__ import annotations

import asyncio

from aiohttp import web

from rhetor_stream.stream.channel import EventChannel

LIMIT = 256 * 1024
EVENT = {"content": "x" * 32 * 1024}


class Recorder(web.StreamResponse):
    """A response whose writes are kept (sizes) and which can be held like a stuck client."""

    def __init__(self) -> None:
        super().__init__()
        self.sizes: list[int] = []
        self.reading = asyncio.Event()

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        await self.reading.wait()
        self.sizes.append(len(data))


async def _queued_bytes_while_stuck(channel: EventChannel, response: Recorder) -> int:
    producer = asyncio.create_task(_produce(channel, 200))
    writer = asyncio.create_task(channel.pump(response))
    await asyncio.sleep(0.1)  # the writer took one batch and is stuck writing it; the queue fills
    assert not producer.done(), "a stuck client must hold the producer back"
    queued = sum(len(frame) for frame in channel._frames)
    response.reading.set()
    await producer
    channel.finish()
    await writer
    return queued


async def _produce(channel: EventChannel, count: int) -> None:
    for _ in range(count):
        await channel.send("chunk", EVENT)


async def test_a_stuck_client_holds_at_most_queue_bytes() -> None:
    channel = EventChannel(256, max_bytes=LIMIT)
    response = Recorder()
    queued = await _queued_bytes_while_stuck(channel, response)
    assert queued <= LIMIT + 33 * 1024  # the bound, and the one event that crossed it
    assert max(response.sizes) <= LIMIT
    assert sum(response.sizes) > 200 * 32 * 1024  # and nothing was lost


async def test_an_event_larger_than_the_limit_still_goes_out_alone() -> None:
    channel = EventChannel(256, max_bytes=1024)
    response = Recorder()
    response.reading.set()
    writer = asyncio.create_task(channel.pump(response))
    for _ in range(3):
        await channel.send("chunk", EVENT)
    channel.finish()
    await writer
    assert len(response.sizes) == 3 and min(response.sizes) > 32 * 1024
