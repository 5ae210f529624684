"""The sink a run writes to: its event log, with backpressure from the subscribers that watch it.

A run has no queue of its own: its events go to the store, and each subscriber follows the log at
its own pace. A subscriber that asked for backpressure (the client of `POST /stream`) holds the run
back when it falls `window` events behind what the run has logged; a detached run is only limited by
the store's own bound. That window is the run's only backpressure on its tool: a subscriber writes
what it read before it reads more, so while its client is slow its place falls behind and the window
closes.

This is the per-event path of every run, so it is kept short: the slowest subscriber's place is
remembered rather than searched for on each event, and the store is only awaited when it asks.
"""
from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from rhetor_stream.runs.store import EventStore, final_status
from rhetor_stream.stream.channel import Item, Payload, encode_payload

# With nobody holding it back, a tool that never waits would starve the event loop: it yields once
# every this many events.
_FAIRNESS_EVERY = 64


class RunRecorder:
    __slots__ = ("run_id", "seq", "_store", "_window", "_finished", "_places", "_slowest", "_space")

    def __init__(self, run_id: str, store: EventStore, *, window: int) -> None:
        self.run_id = run_id
        self.seq = 0  # the number of the last event logged
        self._store = store
        self._window = window
        self._finished = False
        self._places: dict[object, int] = {}  # subscriber -> the last event it has read
        self._slowest: int | None = None  # the smallest of those places (None: nobody holds the run back)
        self._space: asyncio.Future[None] | None = None

    async def send(self, event: str, data: Mapping[str, Any]) -> None:
        slowest = self._slowest
        if slowest is not None and self.seq - slowest >= self._window:
            await self._caught_up()
        if self._finished:
            return
        seq = self.seq = self.seq + 1
        if self._store.append(self.run_id, seq, event, encode_payload(data)):
            await self._store.wait_written(self.run_id)
        elif seq % _FAIRNESS_EVERY == 0:
            await asyncio.sleep(0)

    def offer(self, event: str, data: Mapping[str, Any]) -> bool:
        if self._finished or self._lagging():
            return False
        self._append(event, data)
        return True

    def finish(self, *events: Item, reason: str = "complete") -> None:
        if self._finished:
            return
        for event, data in events:
            self._append(event, data)
        self._store.end(self.run_id, final_status(reason))
        self._finished = True
        self._wake()

    def read_up_to(self, subscriber: object, position: int) -> None:
        """`subscriber` has read the log up to event `position`: the run may get at most `window`
        events ahead of the slowest such subscriber."""
        places = self._places
        previous = places.get(subscriber)
        places[subscriber] = position
        if previous is None or previous == self._slowest:
            self._slowest = min(places.values())
        if not self._lagging():
            self._wake()

    def release(self, subscriber: object) -> None:
        """`subscriber` no longer holds the run back."""
        places = self._places
        if places.pop(subscriber, None) is not None:
            self._slowest = min(places.values()) if places else None
        self._wake()

    async def _caught_up(self) -> None:
        while self._lagging():
            if self._space is None or self._space.done():
                self._space = asyncio.get_running_loop().create_future()
            await self._space

    def _lagging(self) -> bool:
        slowest = self._slowest
        return slowest is not None and not self._finished and self.seq - slowest >= self._window

    def _append(self, event: str, data: Payload) -> None:
        self.seq += 1
        self._store.append(self.run_id, self.seq, event, encode_payload(data))

    def _wake(self) -> None:
        if self._space is not None and not self._space.done():
            self._space.set_result(None)
