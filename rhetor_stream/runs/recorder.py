"""The sink a run writes to: its event log, with backpressure from the subscribers that watch it.

A run has no queue of its own: its events go to the store, and each subscriber follows the log at
its own pace. A subscriber that asked for backpressure (the client of `POST /stream`) holds the run
back when it falls more than `window` events behind, exactly as the per-request queue does for a
plain stream; a detached run is only limited by the store's own bound.
"""
from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from rhetor_stream.runs.store import EventStore, StoredEvent, final_status
from rhetor_stream.stream.channel import Item, Payload, encode_payload


_FAIRNESS_EVERY = 64


class RunRecorder:
    def __init__(self, run_id: str, store: EventStore, *, window: int) -> None:
        self.run_id = run_id
        self.seq = 0
        self._store = store
        self._window = window
        self._finished = False
        self._cursors: dict[object, int] = {}
        self._space: asyncio.Future[None] | None = None

    @property
    def finished(self) -> bool:
        return self._finished

    async def send(self, event: str, data: Mapping[str, Any]) -> None:
        while self._lagging():
            if self._space is None or self._space.done():
                self._space = asyncio.get_running_loop().create_future()
            await self._space
        if self._finished:
            return
        self._append(event, data)
        await self._store.wait_written(self.run_id)
        if self.seq % _FAIRNESS_EVERY == 0:
            # With nobody holding it back, a tool that never waits would starve the event loop.
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

    def hold_back(self, subscriber: object, position: int) -> None:
        """`subscriber` has read up to `position`; the run may not get `window` events ahead of it."""
        self._cursors[subscriber] = position
        if not self._lagging():
            self._wake()

    def release(self, subscriber: object) -> None:
        self._cursors.pop(subscriber, None)
        self._wake()

    def _lagging(self) -> bool:
        return bool(self._cursors) and not self._finished and \
            self.seq - min(self._cursors.values()) >= self._window

    def _append(self, event: str, data: Payload) -> None:
        self.seq += 1
        self._store.append(self.run_id, StoredEvent(self.seq, event, encode_payload(data)))

    def _wake(self) -> None:
        if self._space is not None and not self._space.done():
            self._space.set_result(None)
