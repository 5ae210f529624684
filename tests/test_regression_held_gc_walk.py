"""Regression: every event a process held for the Redis store was an object the GC walks.

The held buffer (a run's unwritten events and a tail of written ones, up to
--event-store-buffer-bytes) kept a `StoredEvent` per event. Python's cyclic collector walks each
such object at every full collection: with 1000 Redis-backed runs they were half of what it walked,
a quarter of the server's CPU went to collecting, and a full collection held every stream for up to
400 ms. Now a run's held events are names and data in two deques (strings and bytes are not walked).
"""
from __future__ import annotations

import gc

from rhetor_stream.runs.held import HeldEvents
from rhetor_stream.runs.store import StoredEvent

EVENTS = 20_000


def test_held_events_add_nothing_for_the_collector_to_walk() -> None:
    held = HeldEvents(limit=1 << 40)
    run = held.open("r")
    gc.collect()
    before = len(gc.get_objects())
    for seq in range(1, EVENTS + 1):
        held.add(run, seq, "chunk", b'{"n":%d}' % seq)
    gc.collect()
    grown = len(gc.get_objects()) - before
    assert grown < EVENTS // 100, f"{grown} more objects for the collector to walk after holding {EVENTS} events"
    assert run.after(EVENTS - 2, run.last) == [StoredEvent(seq, "chunk", b'{"n":%d}' % seq)
                                               for seq in (EVENTS - 1, EVENTS)]
