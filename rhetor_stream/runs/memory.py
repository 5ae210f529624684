"""The embedded event store: one process, bounded per run and in all, forgotten after the retention.

Finished runs wait for their expiry in a queue ordered by it (the retention is one constant), so
forgetting them costs nothing per request however many are kept; when the events of all runs
together pass the total budget, the oldest finished runs are forgotten early. Running runs are only
bounded by their own limits: dropping one would break its live subscribers.
"""
from __future__ import annotations

import asyncio
import collections
import time

import attrs

from rhetor_stream.runs.store import EventsExpired, EventStore, RunRecord, StoredEvent


@attrs.define
class _Log:
    record: RunRecord
    events: list[StoredEvent] = attrs.Factory(list)
    dropped: int = 0  # events[:dropped] are past the bound, kept only until the next compaction
    size: int = 0
    changed: asyncio.Future[None] | None = None
    expires: float | None = None


class MemoryEventStore(EventStore):
    def __init__(self, *, retention: float, max_events: int, max_bytes: int,
                 max_total_bytes: int | None = None) -> None:
        self._retention = retention
        self._max_events = max_events
        self._max_bytes = max_bytes
        self._max_total_bytes = max_total_bytes
        self._logs: dict[str, _Log] = {}
        self._finished: collections.deque[tuple[float, str]] = collections.deque()  # (expires, run id)
        self._total = 0  # bytes of event data of every log

    @property
    def total_bytes(self) -> int:
        return self._total

    async def create(self, record: RunRecord) -> None:
        self._purge()
        self._logs[record.run_id] = _Log(record)

    def append(self, run_id: str, event: StoredEvent) -> None:
        log = self._logs[run_id]
        log.events.append(event)
        log.size += len(event.data)
        self._total += len(event.data)
        # The bound drops the oldest events; a subscriber that far behind is told so (EventsExpired).
        while (len(log.events) - log.dropped > self._max_events
               or (log.size > self._max_bytes and len(log.events) - log.dropped > 1)):
            size = len(log.events[log.dropped].data)
            log.size -= size
            self._total -= size
            log.dropped += 1
        if log.dropped > len(log.events) // 2:
            del log.events[:log.dropped]
            log.dropped = 0
        if log.changed is not None and not log.changed.done():
            log.changed.set_result(None)
        log.changed = None

    def end(self, run_id: str, status: str) -> None:
        log = self._logs.get(run_id)
        if log is not None:
            log.record = attrs.evolve(log.record, status=status, finished=time.time())
            log.expires = time.monotonic() + self._retention
            self._finished.append((log.expires, run_id))
        self._purge()

    async def get(self, run_id: str) -> RunRecord | None:
        log = self._live(run_id)
        return None if log is None else log.record

    async def read(self, run_id: str, after: int, *, wait: float) -> list[StoredEvent]:
        log = self._live(run_id)
        if log is None:
            return []
        events = self._after(log, after)
        if events or wait <= 0:
            return events
        if log.changed is None:
            log.changed = asyncio.get_running_loop().create_future()
        try:
            await asyncio.wait_for(asyncio.shield(log.changed), wait)
        except asyncio.TimeoutError:
            return []
        return self._after(log, after)

    async def request_cancel(self, run_id: str) -> None:
        self._on_cancel(run_id)

    def _after(self, log: _Log, after: int) -> list[StoredEvent]:
        if len(log.events) == log.dropped:
            return []
        first = log.events[log.dropped].seq
        if after < first - 1:
            raise EventsExpired(log.record.run_id, first)
        return log.events[log.dropped + max(after - first + 1, 0):]

    def _live(self, run_id: str) -> _Log | None:
        self._purge()
        return self._logs.get(run_id)

    def _purge(self) -> None:
        """Forget finished runs past their retention, and the oldest ones while over the budget."""
        now = time.monotonic()
        budget = self._max_total_bytes
        while self._finished and (self._finished[0][0] <= now or (budget is not None and self._total > budget)):
            _, run_id = self._finished.popleft()
            log = self._logs.pop(run_id, None)
            if log is not None:
                self._total -= log.size
