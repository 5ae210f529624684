"""The embedded event store: one process, bounded per run and in all, forgotten after the retention.

Finished runs wait for their expiry in a queue ordered by it (the retention is one constant), so
forgetting them costs nothing per request however many are kept; when the events of all runs
together pass the total budget, the oldest finished runs are forgotten early, and if that is not
enough, a running run that appends drops its own oldest events (a subscriber that far behind is told
`events_expired`; a live one has read them long ago). Dropping a running run would break its live
subscribers, so that never happens.

The budget counts what the process really spends, not just the JSON: each event costs its data plus
the objects that hold it, each run its record and bookkeeping (`tests/test_regression_store_accounting.py`
checks the figures against tracemalloc). The data itself must be a compact copy (`encode_payload`),
not an orjson result, which holds a ~4 KiB buffer however short the JSON.

A log keeps no object per event: its events' names and data sit in two lists, numbered from the
log's first. Python's cyclic garbage collector walks every object that can refer to others at each
full collection, and a busy store holds hundreds of thousands of events: kept as a `StoredEvent`
each, 1000 runs of 500 events made every full collection take 250-450 ms, every stream of the
process frozen meanwhile, and a fifth of the server's CPU went to collecting. Strings and bytes are
not walked. A reader gets `StoredEvent`s made for what it reads; they die young.
"""
from __future__ import annotations

import asyncio
import collections
import sys
import time

import attrs

from rhetor_stream.runs.store import EventsExpired, EventStore, RunRecord, StoredEvent, stored_events
from rhetor_stream.tasks import TIMER_CONTEXT

# What an event and a run cost beyond the event data (CPython 3.11: ~50 and ~480 bytes): its bytes
# header and its slots in the two lists (its name is one shared string); a run's log, record, key and
# expiry entry.
EVENT_COST = sys.getsizeof(b"") + 2 * 8
RUN_COST = 512


@attrs.define
class _Log:
    record: RunRecord
    # The events `first`, `first + 1`, ...: names[i] and datas[i] are event `first + i`'s.
    names: list[str] = attrs.Factory(list)
    datas: list[bytes] = attrs.Factory(list)
    first: int = 1
    dropped: int = 0  # events [:dropped] are past the bound (their data let go of), cut off when half the lists are
    size: int = 0
    # Followers waiting for the next event, each on a future of its own: a shared one would need a
    # shield per wait (and wait_for a task), about a kilobyte per open stream of a quiet run.
    readers: list[asyncio.Future[None]] = attrs.Factory(list)
    # When the log's one timer wakes its readers (None: no timer pending); see `read`.
    wake_at: float | None = None
    expires: float | None = None


def _wake(readers: list[asyncio.Future[None]]) -> None:
    for reader in readers:
        if not reader.done():
            reader.set_result(None)


def _time_up(log: _Log, when: float) -> None:
    if log.wake_at == when:
        log.wake_at = None
    readers, log.readers = log.readers, []
    _wake(readers)


class MemoryEventStore(EventStore):
    def __init__(self, *, retention: float, max_events: int, max_bytes: int,
                 max_total_bytes: int | None = None) -> None:
        self._retention = retention
        self._max_events = max_events
        # Past max_events a run keeps at most this many before it drops back to max_events: like
        # Redis's `MAXLEN ~`, the bound is trimmed in blocks, not on every event of a long run.
        self._max_events_slack = max_events + max_events // 16
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
        self._logs[record.run_id] = _Log(record, size=RUN_COST)
        self._total += RUN_COST

    def append(self, run_id: str, seq: int, event: str, data: bytes) -> bool:
        log = self._logs[run_id]
        if not log.datas:
            log.first = seq
        log.names.append(sys.intern(event))  # one string per name, however the tool spelled it
        log.datas.append(data)
        cost = len(data) + EVENT_COST
        log.size += cost
        self._total += cost
        if self._max_total_bytes is not None and self._total > self._max_total_bytes:
            self._purge()
            self._trim(log)
        elif len(log.datas) - log.dropped > self._max_events_slack or log.size - RUN_COST > self._max_bytes:
            self._trim(log)
        if log.readers:
            readers, log.readers = log.readers, []
            _wake(readers)
        return False

    def _trim(self, log: _Log) -> None:
        """Drop the oldest events past the bounds; a subscriber that far behind is told so (EventsExpired).

        Dropping moves `dropped` and lets go of the event's data at once (its slot holds the empty
        bytes): the memory the budget no longer counts is freed now, not when the lists are cut, which
        happens when half of them is dropped.
        """
        datas, first, size, total = log.datas, log.dropped, log.size, self._total
        max_events, max_size, budget = self._max_events, self._max_bytes + RUN_COST, self._max_total_bytes
        last = len(datas) - 1
        while first < last and (len(datas) - first > max_events or size > max_size
                                or (budget is not None and total > budget)):
            cost = len(datas[first]) + EVENT_COST
            size -= cost
            total -= cost
            datas[first] = b""
            first += 1
        log.size, self._total = size, total
        if first > len(datas) // 2:
            del datas[:first]
            del log.names[:first]
            log.first += first
            first = 0
        log.dropped = first

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
        del events  # this frame waits for as long as the run is quiet (an hour, for some)
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        readers = log.readers
        if len(readers) > 8:  # readers that timed out are dropped here, or by the next event
            readers[:] = [reader for reader in readers if not reader.done()]
        readers.append(waiter)
        # One timer per log, never cancelled: a reader that an event wakes reads again and waits for
        # the same timer, which may then wake it before its own `wait` is up (an empty answer is
        # allowed at any time). A timer per wait, cancelled by the event, would stay in the event
        # loop's heap until its time: on a busy run, one per event for `wait` seconds.
        when = loop.time() + wait
        if log.wake_at is None or log.wake_at > when:
            log.wake_at = when
            loop.call_at(when, _time_up, log, when, context=TIMER_CONTEXT)
        await waiter
        return self._after(log, after)

    async def last_seq(self, run_id: str) -> int:
        log = self._live(run_id)
        return log.first + len(log.datas) - 1 if log is not None and log.datas else 0

    async def request_cancel(self, run_id: str) -> None:
        self._on_cancel(run_id)

    def _after(self, log: _Log, after: int) -> list[StoredEvent]:
        if len(log.datas) == log.dropped:
            return []
        oldest = log.first + log.dropped  # the number of the oldest event kept
        if after < oldest - 1:
            raise EventsExpired(log.record.run_id, oldest)
        start = max(after + 1 - log.first, log.dropped)
        return stored_events(log.first + start, log.names[start:], log.datas[start:])

    def _live(self, run_id: str) -> _Log | None:
        self._purge()
        return self._logs.get(run_id)

    def _purge(self) -> None:
        """Forget finished runs past their retention, and the oldest ones while over the budget."""
        now = time.monotonic()
        while self._finished and (self._finished[0][0] <= now or self._over_budget()):
            _, run_id = self._finished.popleft()
            log = self._logs.pop(run_id, None)
            if log is not None:
                self._total -= log.size

    def _over_budget(self) -> bool:
        return self._max_total_bytes is not None and self._total > self._max_total_bytes
