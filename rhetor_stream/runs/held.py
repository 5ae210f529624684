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
keeps ~4 KiB whatever its length) plus a fixed overhead for the slots around it, measured with
tracemalloc.

Why no object per held event (a run's names and data sit in two deques, numbered from its oldest):
Python's cyclic garbage collector walks every object that can refer to others at each full
collection, and the buffer holds up to tens of MiB of events. Held as a `StoredEvent` each, with
1000 Redis-backed runs they were half of what the collector walked (139,000 of 314,000 objects), a
quarter of the server's CPU went to collecting and a full collection held every stream for up to
400 ms. Strings and bytes are not walked; readers get `StoredEvent`s made for what they read.
"""
from __future__ import annotations

import asyncio
import collections
import itertools
import sys
import time
from typing import NamedTuple

import attrs

from rhetor_stream.runs.store import RunRecord, StoredEvent, stored_events

# The data's bytes header and the event's slots in its run's two deques and in the buffer's order
# (measured: ~60 bytes; its name is one shared string).
EVENT_OVERHEAD = 64
_READ_LIMIT = 1000  # events one read returns, as one XREAD does
# Seconds the events of a run whose end is written stay held: a short run is often written whole,
# end included, before its client has read it, and would otherwise be read back from Redis at once.
# A client slower than this reads the rest from Redis.
LINGER = 5.0


class Batch(NamedTuple):
    """Consecutive held events as they are held: the number of the first, their names, their data
    (what the writer sends needs no StoredEvent per event: see the module docstring)."""

    first: int
    names: list[str]
    datas: list[bytes]

    @property
    def last(self) -> int:
        return self.first + len(self.names) - 1


def cost(data: bytes) -> int:
    """What holding an event with `data` counts against the budget."""
    return len(data) + EVENT_OVERHEAD


@attrs.define(eq=False)
class RunEvents:
    """One run's held events: consecutive sequence numbers, the oldest forgotten first."""

    run_id: str
    # The held events `first`, `first + 1`, ...: names[i] and datas[i] are event `first + i`'s.
    names: collections.deque[str] = attrs.Factory(collections.deque)
    datas: collections.deque[bytes] = attrs.Factory(collections.deque)
    first: int = 1
    last: int = 0  # the last sequence number appended
    written: int = 0  # the last one the store confirmed
    # The top the store's log must have: lower means the store lost what this process wrote.
    top: int = 0
    ending: tuple[str, RunRecord | None] | None = None  # final status (and record) to write
    overflowed: bool = False
    closed: bool = False
    changed: asyncio.Future[None] | None = None

    def unwritten(self) -> Batch:
        return self._between(self.written, self.last)

    def oldest(self) -> int:
        """The number of the oldest held event (the next one's when none is held)."""
        return self.first if self.datas else self.last + 1

    def covers(self, after: int) -> bool:
        """True when every event after `after` is held (a subscriber there can be served from here)."""
        return self.oldest() <= after + 1 <= self.last + 1

    def after(self, after: int, upto: int) -> list[StoredEvent]:
        """The held events after `after` up to `upto` (at most as many as one XREAD returns)."""
        return stored_events(*self._between(after, min(upto, after + _READ_LIMIT)))

    def _between(self, after: int, upto: int) -> Batch:
        """Events `after`+1 to `upto`, walking the deques from their nearer end: followers read near
        the top, and a run may hold thousands of written events below them."""
        start = max(after + 1 - self.first, 0)
        count = min(upto - after, len(self.datas) - start)
        if count <= 0:
            return Batch(after + 1, [], [])
        from_top = len(self.datas) - start - count
        if from_top < start:
            names = list(itertools.islice(reversed(self.names), from_top, from_top + count))[::-1]
            datas = list(itertools.islice(reversed(self.datas), from_top, from_top + count))[::-1]
        else:
            names = list(itertools.islice(self.names, start, start + count))
            datas = list(itertools.islice(self.datas, start, start + count))
        return Batch(self.first + start, names, datas)

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

    def add(self, run: RunEvents, seq: int, event: str, data: bytes) -> bool:
        """Hold event `seq` of `run` (the one after its last); False when the budget is spent on
        unwritten events."""
        if not run.datas:
            run.first = seq
        run.names.append(sys.intern(event))  # one string per name, however the tool spelled it
        run.datas.append(data)
        run.last = seq
        self._order.append(run)
        self._count += 1
        self.bytes += cost(data)
        return self.bytes <= self.limit or self.make_room()

    def make_room(self, spare: int = 0) -> bool:
        """Forget written events, oldest first, until the held ones fit with `spare` bytes to spare;
        False if they do not fit at all. (The writer leaves some room after each write: then `add`
        seldom has to make room an event at a time.)"""
        order, floor = self._order, self.limit - spare
        while self.bytes > floor and order:
            run = order[0]
            if not run.datas:
                order.popleft()  # dropped whole already
                continue
            if run.first > run.written:
                break
            order.popleft()
            self._forget(run)
        self._expire()
        if len(order) > 2 * self._count + 1024:
            self._order = collections.deque(run for run in order if run.datas)
        return self.bytes <= self.limit

    def close(self, run: RunEvents, *, linger: bool = True) -> None:
        """The run needs no more writing: its end is written (its events linger for its followers
        here), or it was ended elsewhere (`linger=False`: what it holds is not what Redis has)."""
        run.closed = True
        self._runs.pop(run.run_id, None)
        if linger and run.datas:
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
        while ending and (ending[0][0] <= now or not ending[0][1].datas):
            run = ending.popleft()[1]
            if self._ended.get(run.run_id) is run:
                del self._ended[run.run_id]
            self._drop(run)

    def _drop(self, run: RunEvents) -> None:
        while run.datas:
            self._forget(run)

    def _forget(self, run: RunEvents) -> None:
        """Let go of `run`'s oldest held event."""
        run.names.popleft()
        self.bytes -= cost(run.datas.popleft())
        run.first += 1
        self._count -= 1

