"""Regression: a running run past its bound held up to twice the events the memory store counted.

Dropping the oldest events of a long run only moved an index; the list was cut (and the events freed)
once half of it was dropped. Until then the dropped events were still held, although neither the
run's bound nor the store's budget counted them: `make stress` measured 18 MiB of RSS growth for a
10 MiB budget. A dropped event is now let go of at once.
"""
from __future__ import annotations

import time
import tracemalloc

from rhetor_stream.runs.memory import MemoryEventStore
from rhetor_stream.runs.store import RUNNING, RunRecord

DATA = b"x" * 1024


async def test_dropped_events_are_let_go_of_at_once() -> None:
    store = MemoryEventStore(retention=300, max_events=1000, max_bytes=64 * 1024 * 1024)
    await store.create(RunRecord("r" * 32, "StreamText", RUNNING, time.time()))
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        # Nearly twice the bound: the list is not cut yet, most of the dropped events would still be held.
        for seq in range(1, 1900):
            store.append("r" * 32, seq, "chunk", b"%d" % seq + DATA)  # an object of its own
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    kept = len(await store.read("r" * 32, 1899 - 1000, wait=0))
    assert kept >= 1000
    assert held <= 1.3 * store.total_bytes, f"{held / store.total_bytes:.2f}x what the store counts is held"
