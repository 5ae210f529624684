"""Regression: the memory store held ~70x the bytes it counted.

Each stored event kept the object `orjson.dumps` returned, which holds a ~4 KiB buffer however short
the JSON, while the budget counted `len(data)`: `--run-store-max-bytes 10MiB` levelled off at 705 MiB
of RSS. Events are now compact copies and the budget counts the objects that hold them, so what
tracemalloc sees stays within 1.5x of what the store counts, and of its budget, finished or running.
"""
from __future__ import annotations

import time
import tracemalloc
from collections.abc import Iterator

import pytest

from rhetor_stream.runs.memory import MemoryEventStore
from rhetor_stream.runs.recorder import RunRecorder
from rhetor_stream.runs.store import RUNNING, RunRecord

BUDGET = 2 * 1024 * 1024


@pytest.fixture
def traced() -> Iterator[None]:
    tracemalloc.start()
    yield
    tracemalloc.stop()


async def _fill(store: MemoryEventStore, *, runs: int, events: int, finish: bool) -> None:
    for number in range(runs):
        run_id = f"{number:032x}"
        await store.create(RunRecord(run_id, "StreamText", RUNNING, time.time()))
        recorder = RunRecorder(run_id, store, window=256)
        for index in range(events):
            recorder.offer("chunk", {"content": "word ", "index": index})
        if finish:
            recorder.finish(("complete", {"result": None}), ("disconnect", {"reason": "complete"}))


@pytest.mark.parametrize("finish", [True, False], ids=["finished", "running"])
async def test_what_the_store_counts_is_what_it_holds(traced: None, finish: bool) -> None:
    store = MemoryEventStore(retention=300, max_events=10_000, max_bytes=16 * 1024 * 1024)
    before = tracemalloc.get_traced_memory()[0]
    await _fill(store, runs=200, events=50, finish=finish)
    held = tracemalloc.get_traced_memory()[0] - before
    # Within 1.5x either way: small numbers and list slots cost less than the count says.
    assert store.total_bytes <= 1.5 * held and held <= 1.5 * store.total_bytes, (held, store.total_bytes)


@pytest.mark.parametrize("finish", [True, False], ids=["finished", "running"])
async def test_the_budget_bounds_what_the_store_holds(traced: None, finish: bool) -> None:
    store = MemoryEventStore(retention=300, max_events=10_000, max_bytes=16 * 1024 * 1024,
                             max_total_bytes=BUDGET)
    before = tracemalloc.get_traced_memory()[0]
    await _fill(store, runs=400, events=200, finish=finish)  # ~8x the budget in events
    held = tracemalloc.get_traced_memory()[0] - before
    if finish:  # running runs are never dropped: each keeps its newest event beyond the budget
        assert store.total_bytes <= BUDGET
    assert held <= 1.5 * BUDGET, f"{held / BUDGET:.1f}x the budget held"
