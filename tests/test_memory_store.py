"""The memory event store's bounds: per run, in all, and in time."""
from __future__ import annotations

import time

from rhetor_stream.runs.memory import EVENT_COST, RUN_COST, MemoryEventStore
from rhetor_stream.runs.store import RUNNING, EventsExpired, RunRecord

KB_EVENT = 1000 + EVENT_COST  # what a 1000-byte event counts against the bounds


async def _run(store: MemoryEventStore, run_id: str, events: int, size: int, *, end: bool = True) -> None:
    await store.create(RunRecord(run_id, "Echo", RUNNING, time.time()))
    for seq in range(1, events + 1):
        store.append(run_id, seq, "chunk", b"x" * size)
    if end:
        store.end(run_id, "complete")


async def test_the_oldest_finished_runs_go_first_when_over_the_total_budget() -> None:
    run = RUN_COST + 10 * KB_EVENT
    store = MemoryEventStore(retention=300, max_events=1000, max_bytes=10 * KB_EVENT,
                             max_total_bytes=2 * run + run // 2)
    for name in ("a", "b", "c"):
        await _run(store, name, 10, 1000)
    assert await store.get("a") is None  # 3 runs > 2.5 runs: the oldest finished run is forgotten
    assert await store.get("b") is not None and await store.get("c") is not None
    assert store.total_bytes == 2 * run


async def test_running_runs_are_never_forgotten_for_the_budget() -> None:
    budget = RUN_COST + 5 * KB_EVENT
    store = MemoryEventStore(retention=300, max_events=1000, max_bytes=10 * KB_EVENT, max_total_bytes=budget)
    await _run(store, "done", 2, 1000)
    await _run(store, "live", 10, 1000, end=False)
    assert await store.get("done") is None  # the finished one made room first
    # then the running one kept its newest events within the budget
    assert [event.seq for event in await store.read("live", 5, wait=0)] == [6, 7, 8, 9, 10]
    assert store.total_bytes == budget


async def test_one_run_is_bounded_in_events_and_bytes() -> None:
    store = MemoryEventStore(retention=300, max_events=5, max_bytes=3 * KB_EVENT, max_total_bytes=None)
    await _run(store, "r", 10, 1000, end=False)
    kept = await store.read("r", 7, wait=0)
    assert [event.seq for event in kept] == [8, 9, 10] and store.total_bytes == RUN_COST + 3 * KB_EVENT
    try:
        await store.read("r", 0, wait=0)
    except EventsExpired as exc:
        assert exc.first_kept == 8
    else:
        raise AssertionError("a reader that far behind must be told its events are gone")


async def test_finished_runs_expire_after_the_retention() -> None:
    store = MemoryEventStore(retention=0.05, max_events=100, max_bytes=10_000)
    await _run(store, "r", 3, 10)
    assert await store.get("r") is not None
    time.sleep(0.06)  # noqa: ASYNC251  (no loop turn: the read itself must see the run expired)
    assert await store.get("r") is None and store.total_bytes == 0
