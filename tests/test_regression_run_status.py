"""Regression: a run's stream had ended but its status still said `running` (CI, test_scale_out).

The Redis store wrote a run's last events in one pipeline and its final status in a later one, and
the finishing flush could overtake a flush still in flight. A client that read the stream to its end
and then asked for the status could find `running`, and an overtaken XADD could fail outright.
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from rhetor_stream.runs.memory import MemoryEventStore
from rhetor_stream.runs.recorder import RunRecorder
from rhetor_stream.runs.store import RUNNING, EventStore, RunRecord


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[EventStore]:
    if request.param == "memory":
        made: EventStore = MemoryEventStore(retention=60, max_events=10_000, max_bytes=1 << 24)
    else:
        from rhetor_stream.runs.redis_store import RedisEventStore
        made = RedisEventStore(request.getfixturevalue("redis_url"), retention=60, max_events=10_000,
                               prefix=f"regression-{time.monotonic_ns()}")
    await made.start(on_cancel=lambda run_id: None)
    yield made
    await made.close()


async def _follow_to_the_end(store: EventStore, run_id: str) -> tuple[list[int], str]:
    """Read the log like a subscriber; the moment `disconnect` arrives, ask for the status."""
    seen: list[int] = []
    while True:
        for event in await store.read(run_id, seen[-1] if seen else 0, wait=5):
            seen.append(event.seq)
            if event.event == "disconnect":
                record = await store.get(run_id)
                assert record is not None
                return seen, record.status


@pytest.mark.parametrize("reason, status", [("complete", "complete"), ("error", "error"),
                                            ("client_disconnected", "cancelled")])
async def test_the_status_is_final_once_the_last_event_is_readable(store: EventStore, reason: str,
                                                                   status: str) -> None:
    for attempt in range(20):  # each attempt races the reader against the writer once
        run_id = f"run-{reason}-{attempt}"
        await store.create(RunRecord(run_id, "Echo", RUNNING, time.time()))
        recorder = RunRecorder(run_id, store, window=64)
        reader = asyncio.create_task(_follow_to_the_end(store, run_id))
        for n in range(50):
            await recorder.send("chunk", {"n": n})
        recorder.finish(("complete", {}), ("disconnect", {"reason": reason}), reason=reason)
        seen, final = await asyncio.wait_for(reader, 10)
        assert seen == list(range(1, 53))
        assert final == status


async def test_a_finishing_flush_never_overtakes_one_in_flight(store: EventStore) -> None:
    run_id = "overtaken"
    await store.create(RunRecord(run_id, "Echo", RUNNING, time.time()))
    recorder = RunRecorder(run_id, store, window=64)
    await asyncio.gather(*(store.get(run_id) for _ in range(4)))  # idle connections for a second flush
    for _ in range(1000):  # about 1 MB in one flush: Redis reads it in pieces, between other clients
        recorder.offer("chunk", {"text": "x" * 1000})
    await asyncio.sleep(0)  # that flush is in flight now
    recorder.finish(("disconnect", {"reason": "complete"}), reason="complete")
    seen, final = await asyncio.wait_for(_follow_to_the_end(store, run_id), 10)
    assert seen == list(range(1, 1002)) and final == "complete"
