"""A client following a run's log: each batch the log hands over becomes one write to its response.

Why there is no queue between the log and the socket: the run's log already is one. The follower
takes what the log has after its place, frames it and writes it, and only then asks for more; while
the client is slow that write waits (aiohttp drains the transport), the follower's place stays behind
and the run's recorder holds the tool back (its window). One task, the request's own, does all of
it: no forwarder task, no channel, nothing per event but its frame.

Why `drop` cancels the request's task: the follower may be waiting for the log (a quiet run) or for
the socket, and the supervisor must be able to end it either way. The cancellation is its own
(`uncancel`), so it ends the stream cleanly: without a final event, which makes an EventSource
reconnect (after a shutdown, to another process). A cancellation from aiohttp is not ours and goes on.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

from aiohttp import web

from rhetor_stream.runs.store import StoredEvent
from rhetor_stream.sse.encoding import HEARTBEAT, encode_numbered
from rhetor_stream.sse.ids import id_head

log = logging.getLogger("rhetor_stream.runs")

# The bytes of one event of a run's log on the wire: (number, event, JSON data) -> frame.
Frames = Callable[[int, str, bytes], bytes]


class EventFrames:
    """Our own frames: ids `<prefix>-N` with the log's numbers, and the `retry` hint in the first."""

    __slots__ = ("_head", "_retry_ms")

    def __init__(self, id_prefix: str, retry_ms: int | None) -> None:
        self._head = id_head(id_prefix)
        self._retry_ms = retry_ms

    def __call__(self, number: int, event: str, data: bytes) -> bytes:
        retry, self._retry_ms = self._retry_ms, None
        return encode_numbered(self._head, number, event, data, retry)


class RunFollower:
    """One client's stream of a run: what `RunManager.forward` feeds and the supervisor watches."""

    # Slots and a bare future: memory per open stream is a product figure.
    __slots__ = ("request", "local", "events_written", "bytes_written", "write_started", "last_write", "_frames",
                 "_max_bytes", "_response", "_ping", "_task", "_dropped", "_closed", "last_id")

    def __init__(self, request: web.BaseRequest, response: web.StreamResponse, frames: Frames, *,
                 max_bytes: int, local: bool) -> None:
        self.request = request
        self.local = local  # the run executes in this process: its end reaches this follower
        self._response = response
        self._frames = frames
        self._max_bytes = max_bytes
        self.events_written = 0
        self.bytes_written = 0
        self.last_id = 0  # the number of the last event written
        self.write_started: float | None = None
        self.last_write = asyncio.get_running_loop().time()
        self._ping = False
        self._task = asyncio.current_task()
        self._dropped: str | None = None
        self._closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    @property
    def writes(self) -> RunFollower:
        """What the supervisor reads its write clock from and asks for heartbeats."""
        return self

    @property
    def dropped(self) -> str | None:
        return self._dropped

    async def deliver(self, events: Sequence[StoredEvent]) -> None:
        frames = self._frames
        batch: list[bytes] = []
        size = 0
        for number, event, data in events:
            frame = frames(number, event, data)
            if size and size + len(frame) > self._max_bytes:
                await self._write(b"".join(batch), len(batch))
                batch, size = [], 0
            batch.append(frame)
            size += len(frame)
            self.last_id = number
        await self._write(batch[0] if len(batch) == 1 else b"".join(batch), len(batch))

    async def idle(self) -> None:
        if self._ping:
            self._ping = False
            await self._write(HEARTBEAT, 0)

    def heartbeat(self) -> None:
        """A ping is due: written the next time the log has nothing new (`idle`)."""
        self._ping = True

    def drop(self, reason: str) -> None:
        if reason == "server_shutdown" and self.local:
            return  # the run itself is cancelled; its final events reach this subscriber
        if self._dropped is None and self._task is not None and not self._closed.done():
            self._dropped = reason
            self._task.cancel()

    def ended(self) -> None:
        """The stream is over (`wait_closed` returns)."""
        if not self._closed.done():
            self._closed.set_result(None)

    async def wait_closed(self) -> None:
        await asyncio.shield(self._closed)

    async def _write(self, payload: bytes, events: int) -> None:
        loop = asyncio.get_running_loop()
        self.write_started = loop.time()
        await self._response.write(payload)
        self.last_write = loop.time()
        self.write_started = None
        self.events_written += events
        self.bytes_written += len(payload)
