"""The bounded bridge between a running tool and the client's `web.StreamResponse`.

Why each event becomes its complete frame (id included) the moment it is queued: the queue is
bounded in bytes as well as in events (one event may be a megabyte), and only an encoded frame has
a size. Ids still increase in the order the client receives them, because the queue is first in,
first out and a producer waiting for space has no id yet: a timer (a throttled progress event, a
heartbeat) that slips an item in meanwhile simply gets the next one. The frame is also the compact
copy of the JSON that memory needs: an orjson result holds a ~4 KiB buffer however short the JSON,
which a full queue would multiply by its length.

Why everything queued is written at once: one `write` per event costs several microseconds of
syscalls and bookkeeping; joining whatever the producer has already queued into a single write (up
to the byte bound) makes a fast stream cost a fraction of that, while an event produced on an idle
stream still goes out in the very next loop turn.

Why the queue is a list and futures rather than an `asyncio.Queue`: an idle open stream should cost
next to nothing, and an `asyncio.Queue` allocates four deques (about 3 KiB) before its first item.
The channel keeps the same contract (bounded, producers wait when it is full, one writer) with a
list that the writer swaps out whole, and futures created only while somebody actually waits.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator, Mapping
from typing import Any, Protocol

import orjson
from aiohttp import web

from rhetor_stream.sse.encoding import HEARTBEAT, encode_numbered

log = logging.getLogger("rhetor_stream.stream")

# A payload is a JSON object, or JSON already encoded (events replayed from a run's log).
Payload = Mapping[str, Any] | bytes
Item = tuple[str, Payload]


def encode_payload(data: Payload) -> bytes:
    """The JSON of `data` in an object of its own size, for whatever keeps it (a run's log)."""
    return data if type(data) is bytes else bytes(memoryview(orjson.dumps(data)))


def coalesced(frames: list[bytes], max_bytes: int) -> Iterator[bytes]:
    """`frames` joined into as few writes as possible of at most `max_bytes` each (a larger single
    frame goes alone): what a stream has ready goes out in one write, not one per event."""
    start = size = 0
    for index, frame in enumerate(frames):
        if size and size + len(frame) > max_bytes:
            yield b"".join(frames[start:index])
            start, size = index, 0
        size += len(frame)
    yield b"".join(frames[start:])


class EventSink(Protocol):
    """Where a run's events go: a client's channel directly, or a run's event log."""

    async def send(self, event: str, data: Mapping[str, Any]) -> None: ...

    def offer(self, event: str, data: Mapping[str, Any]) -> bool: ...

    def finish(self, *events: Item, reason: str = "complete") -> None:
        """The last frames; `reason` is why the run ended (`complete`, `error`, `client_disconnected`...)."""


class EventChannel:
    """Events of one stream: `send` waits while the queue is full, `pump` writes them out.

    Its events are numbered here, 1, 2, 3...: a stream of its own (the test stream), which nobody
    resumes. A run's clients read its log instead (`web.streams.RunFollower`), with the log's numbers as ids.
    """

    __slots__ = ("_maxsize", "_max_bytes", "_frames", "_queued_bytes", "_getter", "_putters", "_retry_ms",
                 "_finished", "last_id", "events_written", "bytes_written", "write_started",
                 "last_write")

    def __init__(self, maxsize: int, *, max_bytes: int, retry_ms: int | None = None) -> None:
        self._maxsize = maxsize
        self._max_bytes = max_bytes
        self._frames: list[bytes] = []
        self._queued_bytes = 0
        self._getter: asyncio.Future[None] | None = None
        self._putters: list[asyncio.Future[None]] = []
        self._retry_ms = retry_ms  # sent with the first event only
        self._finished = False
        self.last_id = 0  # the id of the last event queued
        self.events_written = 0
        self.bytes_written = 0
        self.write_started: float | None = None
        self.last_write = 0.0

    async def send(self, event: str, data: Payload) -> None:
        """Queue an event; waits while the client is behind (that is the backpressure)."""
        while not self._has_room() and not self._finished:
            waiter = asyncio.get_running_loop().create_future()
            self._putters.append(waiter)  # a cancelled waiter is skipped when producers are woken
            await waiter
        if self._finished:
            return
        self._queue(event, data)

    def offer(self, event: str, data: Payload) -> bool:
        """Queue an event only if there is room now; for timers, which cannot wait."""
        if self._finished or not self._has_room():
            return False
        self._queue(event, data)
        return True

    def heartbeat(self) -> None:
        """Queue a `: ping` comment unless events are already waiting to go out."""
        if not self._frames and not self._finished:
            self._frames.append(HEARTBEAT)
            self._wake_writer()

    def finish(self, *events: Item, reason: str = "complete") -> None:
        """Close the channel: `events` go out after everything already queued, then the stream ends.

        It never waits, so a cancelled producer and server shutdown can always end a stream with a
        complete final frame, even when the queue is full. The client learns the `reason` from the
        frames themselves, so a channel does not keep it.
        """
        if self._finished:
            return
        for event, data in events:
            self._queue(event, data)
        self._finished = True
        self._wake_writer()
        self._wake_producers()

    async def pump(self, response: web.StreamResponse) -> None:
        """Write queued events until `finish`; raises when the client is gone."""
        loop = asyncio.get_running_loop()
        self.last_write = loop.time()
        while True:
            while not self._frames and not self._finished:
                self._getter = loop.create_future()
                await self._getter
            frames, queued, self._frames, self._queued_bytes = self._frames, self._queued_bytes, [], 0
            self._wake_producers()
            done = self._finished
            if not frames:
                return  # finished with nothing left to write
            # A heartbeat is only queued into an empty queue, so it can only come first.
            self.events_written += len(frames) - (frames[0] is HEARTBEAT)
            for payload in ((b"".join(frames),) if queued <= self._max_bytes else coalesced(frames, self._max_bytes)):
                self.write_started = loop.time()
                await response.write(payload)
                self.last_write = loop.time()
                self.write_started = None
                self.bytes_written += len(payload)
            del frames  # an idle stream should not keep its last batch alive
            payload = b""
            if done:
                return

    def _has_room(self) -> bool:
        """Room for one more event; an empty queue takes any single event, however large."""
        frames = self._frames
        return not frames or (len(frames) < self._maxsize and self._queued_bytes < self._max_bytes)

    def _queue(self, event: str, data: Payload) -> None:
        number = self.last_id = self.last_id + 1
        retry, self._retry_ms = self._retry_ms, None
        frame = encode_numbered(b"id: ", number, event, data, retry)
        self._frames.append(frame)
        self._queued_bytes += len(frame)
        if self._getter is not None:
            self._wake_writer()


    def _wake_writer(self) -> None:
        getter = self._getter
        if getter is not None:
            self._getter = None
            if not getter.done():
                getter.set_result(None)

    def _wake_producers(self) -> None:
        putters, self._putters = self._putters, []
        for putter in putters:
            if not putter.done():
                putter.set_result(None)
