"""The bounded bridge between a running tool and the client's `web.StreamResponse`.

Why the frames are encoded by the writer and not by the producer: event ids must increase in the
order the client receives them, and a timer (a throttled progress event, a heartbeat) may slip an
item into the queue while the producer waits for space. Numbering at write time makes the order on
the wire the only order there is. Why everything queued is written at once: one `write` per event
costs several microseconds of syscalls and bookkeeping; joining whatever the producer has already
queued into a single write makes a fast stream cost a fraction of that, while an event produced on
an idle stream still goes out in the very next loop turn.

Why the queue is a list and futures rather than an `asyncio.Queue`: an idle open stream should cost
next to nothing, and an `asyncio.Queue` allocates four deques (about 3 KiB) before its first item.
The channel keeps the same contract (bounded, producers wait when it is full, one writer) with a
list that the writer swaps out whole, and futures created only while somebody actually waits.

Why the data is encoded by the producer: the queue is bounded in bytes as well as in events (one
event may be a megabyte), and only encoded JSON has a size. The id is still added at write time.
The encoded data is a compact copy: orjson's result holds a ~4 KiB buffer however short the JSON,
which a full queue would multiply by its length. Events replayed from a run's log arrive encoded.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator, Mapping
from typing import Any, Final, Protocol

import orjson
from aiohttp import web

from rhetor_stream.sse.encoding import HEARTBEAT, encode_json_event

log = logging.getLogger("rhetor_stream.stream")

# A payload is a JSON object, or JSON already encoded (events replayed from a run's log).
Payload = Mapping[str, Any] | bytes
Item = tuple[str, Payload]
_Queued = tuple[str, bytes]  # an event with its data encoded
_HEARTBEAT_ITEM: Final[_Queued] = ("", b"")
_ITEM_COST = 64  # what the queue counts for an event beyond its data: the tuple, the list slot, the id


def encode_payload(data: Payload) -> bytes:
    """The JSON of `data` in an object of its own size (see the module docstring)."""
    return data if type(data) is bytes else bytes(memoryview(orjson.dumps(data)))


class EventSink(Protocol):
    """Where a run's events go: a client's channel directly, or a run's event log."""

    async def send(self, event: str, data: Mapping[str, Any]) -> None: ...

    def offer(self, event: str, data: Mapping[str, Any]) -> bool: ...

    def finish(self, *events: Item, reason: str = "complete") -> None:
        """The last frames; `reason` is why the run ended (`complete`, `error`, `client_disconnected`...)."""


class EventChannel:
    """Events of one stream: `send` waits while the queue is full, `pump` writes them out.

    Ids count up from `first_id`; with `id_prefix` they read `prefix-N`, which is how a run's
    replayed stream carries ids that belong to that run alone.
    """

    __slots__ = ("_maxsize", "_max_bytes", "_items", "_queued_bytes", "_getter", "_putters", "_retry_ms",
                 "_tail", "_finished", "_id_prefix", "_retry_sent", "last_id", "events_written", "bytes_written",
                 "write_started", "last_write")

    def __init__(self, maxsize: int, *, max_bytes: int, retry_ms: int | None = None, first_id: int = 1,
                 id_prefix: str | None = None) -> None:
        self._maxsize = maxsize
        self._max_bytes = max_bytes
        self._items: list[_Queued] = []
        self._queued_bytes = 0
        self._getter: asyncio.Future[None] | None = None
        self._putters: list[asyncio.Future[None]] = []
        self._retry_ms = retry_ms
        self._tail: list[_Queued] = []
        self._finished = False
        self._id_prefix = id_prefix
        self._retry_sent = False
        self.last_id = first_id - 1
        self.events_written = 0
        self.bytes_written = 0
        self.write_started: float | None = None
        self.last_write = 0.0

    @property
    def finished(self) -> bool:
        return self._finished

    async def send(self, event: str, data: Payload) -> None:
        """Queue an event; waits while the client is behind (that is the backpressure)."""
        encoded = encode_payload(data)
        while not self._has_room(len(encoded)) and not self._finished:
            waiter = asyncio.get_running_loop().create_future()
            self._putters.append(waiter)  # a cancelled waiter is skipped when producers are woken
            await waiter
        if self._finished:
            return
        self._queue(event, encoded)

    def offer(self, event: str, data: Payload) -> bool:
        """Queue an event only if there is room now; for timers, which cannot wait."""
        if self._finished:
            return False
        encoded = encode_payload(data)
        if not self._has_room(len(encoded)):
            return False
        self._queue(event, encoded)
        return True

    def heartbeat(self) -> None:
        """Queue a `: ping` comment unless events are already waiting to go out."""
        if not self._items and not self._finished:
            self._items.append(_HEARTBEAT_ITEM)
            self._wake_writer()

    def _has_room(self, size: int) -> bool:
        """Room for one more event of `size` bytes; an empty queue takes any single event."""
        items = self._items
        return not items or (len(items) < self._maxsize
                             and self._queued_bytes + size + _ITEM_COST <= self._max_bytes)

    def _queue(self, event: str, encoded: bytes) -> None:
        self._items.append((event, encoded))
        self._queued_bytes += len(encoded) + _ITEM_COST
        self._wake_writer()

    def finish(self, *events: Item, reason: str = "complete") -> None:
        """Close the channel: `events` go out after everything already queued, then the stream ends.

        It never waits, so a cancelled producer and server shutdown can always end a stream with a
        complete final frame, even when the queue is full. The client learns the `reason` from the
        frames themselves, so a channel does not keep it.
        """
        if self._finished:
            return
        self._finished = True
        self._tail = [(event, encode_payload(data)) for event, data in events]
        self._wake_writer()
        self._wake_producers()

    async def pump(self, response: web.StreamResponse) -> None:
        """Write queued events until `finish`; raises when the client is gone."""
        loop = asyncio.get_running_loop()
        self.last_write = loop.time()
        while True:
            while not self._items and not self._finished:
                self._getter = loop.create_future()
                await self._getter
            items, self._items, self._queued_bytes = self._items, [], 0
            self._wake_producers()
            done = self._finished
            if done:
                items.extend(self._tail)
            for payload in self._frames(items):
                self.write_started = loop.time()
                await response.write(payload)
                self.last_write = loop.time()
                self.write_started = None
                self.bytes_written += len(payload)
            del items  # an idle stream should not keep its last batch alive
            payload = b""
            if done:
                return

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

    def _frames(self, items: list[_Queued]) -> Iterator[bytes]:
        """The frames of `items`, joined into writes of at most `max_bytes` (or one larger frame).

        Ids are given as frames are built: a write that fails ends the stream anyway.
        """
        batch: list[bytes] = []
        size = 0
        prefix = self._id_prefix
        for item in items:
            if item is _HEARTBEAT_ITEM:
                frame = HEARTBEAT
            else:
                self.last_id += 1
                frame_id: str | int = self.last_id if prefix is None else f"{prefix}-{self.last_id}"
                retry = None if self._retry_sent else self._retry_ms
                self._retry_sent = True
                frame = encode_json_event(item[0], item[1], id=frame_id, retry=retry)
                self.events_written += 1
            if batch and size + len(frame) > self._max_bytes:
                yield b"".join(batch)
                batch, size = [], 0
            batch.append(frame)
            size += len(frame)
        if batch:
            yield b"".join(batch)
