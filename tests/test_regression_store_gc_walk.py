"""Regression: every event the memory store kept was an object Python's garbage collector walks.

The store kept one `StoredEvent` per event. The cyclic collector walks every object that can refer
to others at each full collection, and a busy store keeps hundreds of thousands of events: with
1000 runs of 500 events kept, each full collection took 250-450 ms, every stream of the process
frozen meanwhile, and a fifth of the server's CPU went to collecting. Now a log keeps its events'
names and data in two lists (strings and bytes are not walked): what the collector walks no longer
grows with the events kept.
"""
from __future__ import annotations

import gc

from rhetor_stream.runs.memory import MemoryEventStore
from rhetor_stream.runs.store import RUNNING, RunRecord, StoredEvent

EVENTS = 20_000


async def test_kept_events_add_nothing_for_the_collector_to_walk() -> None:
    store = MemoryEventStore(retention=60, max_events=EVENTS, max_bytes=64 * 1024 * 1024)
    await store.create(RunRecord("r", "Chunks", RUNNING, 0.0))
    gc.collect()
    before = len(gc.get_objects())
    for seq in range(1, EVENTS + 1):
        store.append("r", seq, "chunk", b'{"n":%d}' % seq)
    gc.collect()
    grown = len(gc.get_objects()) - before
    assert grown < EVENTS // 100, f"{grown} more objects for the collector to walk after keeping {EVENTS} events"
    # and they read back as they were written
    events = await store.read("r", EVENTS - 2, wait=0)
    assert events == [StoredEvent(seq, "chunk", b'{"n":%d}' % seq) for seq in (EVENTS - 1, EVENTS)]
    assert await store.last_seq("r") == EVENTS
