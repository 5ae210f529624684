"""What a process holds of its own runs' events for a shared store: the ones not written yet, and a
tail of written ones, within one budget in bytes.

Why unwritten events are held rather than dropped when the store is away: a gap in a run's log
cannot be told from a bug, and the run itself is fine, so the store writes them, in order, once it
is back. Why a tail of written events too: a Redis that restarts without persistence comes back
empty, and the runs still executing here would go on with a log that starts in the middle; what this
process still holds is written again, so a live subscriber goes on without a gap, and one that
resumes from before the tail is told its events are no longer kept (`events_expired`), as for any
bound. The tail also serves this process's own subscribers: the written events at any time (a
follower of a run executing here reads no Redis at all while the events it needs are held, and only
events Redis has, so what it sees is what any process would replay), the unwritten ones too while
the store is away.

The events of a run whose end is written linger a few seconds (`LINGER`), as written events
within the same budget, for its followers here still reading.

Why one budget for both: written events can be forgotten at any time and make room first, oldest
first across runs; unwritten ones never are. When only unwritten events are left over the budget,
the run that adds more must end (the store decides how). Bytes are counted as held: an event's data
(already compact: the recorder encodes it with `encode_payload`, as an `orjson.dumps` result itself
keeps ~4 KiB whatever its length) plus a fixed overhead for the objects around it, measured with
tracemalloc.
"""
from __future__ import annotations

import asyncio
import collections
import itertools
import time

import attrs

from rhetor_stream.runs.store import RunRecord, StoredEvent

# StoredEvent, its bytes header, the sequence number and the two deque slots (measured: ~200 bytes).
EVENT_OVERHEAD = 200
_READ_LIMIT = 1000  # events one read returns, as one XREAD does
# Seconds the events of a run whose end is written stay held: a short run is often written whole,
# end included, before its client has read it, and would otherwise be read back from Redis at once.
# A client slower than this reads the rest from Redis.
LINGER = 5.0


def cost(event: StoredEvent) -> int:
    return len(event.data) + EVENT_OVERHEAD


@attrs.define(eq=False)
class RunEvents:
    """One run's held events: consecutive sequence numbers, the oldest forgotten first."""

    run_id: str
    events: collections.deque[StoredEvent] = attrs.Factory(collections.deque)
    last: int = 0  # the last sequence number appended
    written: int = 0  # the last one the store confirmed
    # The top the store's log must have: lower means the store lost what this process wrote.
    top: int = 0
    ending: tuple[str, RunRecord | None] | None = None  # final status (and record) to write
    overflowed: bool = False
    closed: bool = False
    changed: asyncio.Future[None] | None = None

    def unwritten(self) -> list[StoredEvent]:
        return self._between(self.written, self.last)

    def covers(self, after: int) -> bool:
        """True when every event after `after` is held (a subscriber there can be served from here)."""
        first = self.events[0].seq if self.events else self.last + 1
        return first <= after + 1 <= self.last + 1

    def after(self, after: int, upto: int) -> list[StoredEvent]:
        """The held events after `after` up to `upto` (at most as many as one XREAD returns)."""
        return self._between(after, min(upto, after + _READ_LIMIT))

    def _between(self, after: int, upto: int) -> list[StoredEvent]:
        """Events `after`+1 to `upto`, walking the deque from its nearer end: followers read near its
        top, and a run may hold thousands of written events below them."""
        count = upto - after
        if count <= 0 or not self.events:
            return []
        start = max(after + 1 - self.events[0].seq, 0)
        from_top = len(self.events) - start - count
        if from_top < start:
            return list(itertools.islice(reversed(self.events), from_top, from_top + count))[::-1]
        return list(itertools.islice(self.events, start, start + count))

    async def wait(self, timeout: float) -> None:
        """Until `wake` is called (the store does when followers may have more to read: events
        written, or held while the store is away; the run forgotten), at most `timeout` s."""
        if self.changed is None or self.changed.done():
            self.changed = asyncio.get_running_loop().create_future()
        try:
            await asyncio.wait_for(asyncio.shield(self.changed), timeout)
        except TimeoutError:
            pass

    def wake(self) -> None:
        if self.changed is not None and not self.changed.done():
            self.changed.set_result(None)


class HeldEvents:
    """The held events of every run executing in this process, within `limit` bytes in all."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.bytes = 0
        self._runs: dict[str, RunEvents] = {}
        self._ended: dict[str, RunEvents] = {}  # runs whose end is written, still readable
        self._ending: collections.deque[tuple[float, RunEvents]] = collections.deque()  # (until, run)
        # The run of every held event, in the order added: forgetting goes oldest first across runs.
        # A run's entries stand for its held events in order (events are forgotten from a run's
        # oldest, and only here), except the entries of a run dropped whole: a run with no events
        # left, skipped when reached and swept out when they pile up. A reference, not a (run, seq)
        # tuple: a tuple per event is an object for the garbage collector to walk, which cost more
        # than all the rest of `add`.
        self._order: collections.deque[RunEvents] = collections.deque()
        self._count = 0

    def __len__(self) -> int:
        return len(self._runs)

    def runs(self) -> list[RunEvents]:
        return list(self._runs.values())

    def open(self, run_id: str) -> RunEvents:
        run = self._runs[run_id] = RunEvents(run_id)
        return run

    def get(self, run_id: str) -> RunEvents | None:
        return self._runs.get(run_id)

    def readable(self, run_id: str) -> RunEvents | None:
        """The run, executing or lingering after its end: what its followers here read from."""
        self._expire()
        return self._runs.get(run_id) or self._ended.get(run_id)

    def add(self, run: RunEvents, event: StoredEvent) -> bool:
        """Hold `event`; False when the budget is spent on unwritten events."""
        run.events.append(event)
        run.last = event.seq
        self._order.append(run)
        self._count += 1
        self.bytes += len(event.data) + EVENT_OVERHEAD
        return self.bytes <= self.limit or self.make_room()

    def make_room(self, spare: int = 0) -> bool:
        """Forget written events, oldest first, until the held ones fit with `spare` bytes to spare;
        False if they do not fit at all. (The writer leaves some room after each write: then `add`
        seldom has to make room an event at a time.)"""
        order, floor = self._order, self.limit - spare
        while self.bytes > floor and order:
            run = order[0]
            if not run.events:
                order.popleft()  # dropped whole already
                continue
            if run.events[0].seq > run.written:
                break
            order.popleft()
            self._forget(run.events.popleft())
        self._expire()
        if len(order) > 2 * self._count + 1024:
            self._order = collections.deque(run for run in order if run.events)
        return self.bytes <= self.limit

    def close(self, run: RunEvents, *, linger: bool = True) -> None:
        """The run needs no more writing: its end is written (its events linger for its followers
        here), or it was ended elsewhere (`linger=False`: what it holds is not what Redis has)."""
        run.closed = True
        self._runs.pop(run.run_id, None)
        if linger and run.events:
            self._ended[run.run_id] = run
            self._ending.append((time.monotonic() + LINGER, run))
        else:
            self._drop(run)
        run.wake()
        self._expire()

    def _expire(self) -> None:
        """Drop lingering runs past their time, or whose events were all forgotten already."""
        ending = self._ending
        if not ending:
            return
        now = time.monotonic()
        while ending and (ending[0][0] <= now or not ending[0][1].events):
            run = ending.popleft()[1]
            if self._ended.get(run.run_id) is run:
                del self._ended[run.run_id]
            self._drop(run)

    def _drop(self, run: RunEvents) -> None:
        while run.events:
            self._forget(run.events.popleft())

    def _forget(self, event: StoredEvent) -> None:
        self.bytes -= cost(event)
        self._count -= 1

