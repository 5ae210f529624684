"""The Redis event store's log: consecutive events share a stream entry (one XADD per batch, not per
event), and whoever reads it, from wherever, gets exactly the events after its place: not those
before it in the same entry, none twice after a batch is sent again, and `events_expired` past the
bound."""
from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as redis

from rhetor_stream.runs.redis_store import RedisEventStore
from rhetor_stream.runs.store import RUNNING, EventsExpired, RunRecord, StoredEvent
from rhetor_stream.stream.channel import encode_payload


def _parts(seq: int) -> tuple[str, bytes]:
    return "chunk" if seq % 3 else "progress", encode_payload({"n": seq, "text": "é\u2028x"})


def _event(seq: int) -> StoredEvent:
    return StoredEvent(seq, *_parts(seq))


async def _everything_written(store: RedisEventStore) -> None:
    while await store._write_round():  # (the writer's own rounds, awaited here rather than in its task)
        pass


@pytest.fixture
async def stores(redis_url: str) -> AsyncIterator[tuple[RedisEventStore, RedisEventStore]]:
    """Two processes sharing one Redis: the first executes runs, the second only reads their logs."""
    prefix = f"log-{time.monotonic_ns()}"
    executing = RedisEventStore(redis_url, retention=60, max_events=1000, prefix=prefix)
    reading = RedisEventStore(redis_url, retention=60, max_events=1000, prefix=prefix)
    await executing.start(on_cancel=lambda run_id: None)
    await reading.start(on_cancel=lambda run_id: None)
    try:
        yield executing, reading
    finally:
        await reading.close()
        await executing.close()


async def _run(store: RedisEventStore, run_id: str, events: int) -> None:
    await store.create(RunRecord(run_id, "Chunks", RUNNING, time.time()))
    for seq in range(1, events + 1):
        store.append(run_id, seq, *_parts(seq))
        if seq % 97 == 0:  # batches of several sizes, some longer than one entry holds
            await _everything_written(store)
    await _everything_written(store)


async def test_a_reader_elsewhere_gets_exactly_the_events_after_its_place(
        stores: tuple[RedisEventStore, RedisEventStore]) -> None:
    executing, reading = stores
    await _run(executing, "r", 600)
    for after in (0, 1, 96, 97, 98, 127, 128, 129, 300, 599):
        events = await reading.read("r", after, wait=0)
        assert [event.seq for event in events] == list(range(after + 1, 601)), after
        assert events == [_event(seq) for seq in range(after + 1, 601)]
    assert await reading.read("r", 600, wait=0) == []
    assert await reading.last_seq("r") == 600


async def test_a_waiting_reader_elsewhere_gets_only_what_follows_its_place(
        stores: tuple[RedisEventStore, RedisEventStore]) -> None:
    executing, reading = stores
    await _run(executing, "w", 5)
    for seq in range(6, 9):
        executing.append("w", seq, *_parts(seq))  # one entry: #6 to #8
    waiting = reading.read("w", 6, wait=10)
    await _everything_written(executing)
    assert [event.seq for event in await waiting] == [7, 8]


async def test_a_batch_sent_again_adds_nothing_twice(stores: tuple[RedisEventStore, RedisEventStore]) -> None:
    executing, reading = stores
    await _run(executing, "again", 200)
    run = executing._held.get("again")
    assert run is not None and run.written == 200
    run.written = 150  # as if the replies of the last rounds were lost with the connection
    for seq in range(201, 211):
        executing.append("again", seq, *_parts(seq))
    await _everything_written(executing)  # sends #151 to #210: the log already has up to #200
    assert [event.seq for event in await reading.read("again", 0, wait=0)] == list(range(1, 211))


async def test_the_bound_drops_whole_entries_of_the_oldest_events(
        stores: tuple[RedisEventStore, RedisEventStore], redis_url: str) -> None:
    executing, reading = stores
    await _run(executing, "long", 3000)  # bound: 1000 events
    with pytest.raises(EventsExpired) as expired:
        await reading.read("long", 0, wait=0)
    first_kept = expired.value.first_kept
    assert 1000 < first_kept <= 2001  # at least the last 1000 events are kept
    events = await reading.read("long", first_kept - 1, wait=0)
    assert [event.seq for event in events] == list(range(first_kept, 3001))
    async with redis.from_url(redis_url) as admin:
        entries = await admin.xlen(executing._events_key("long"))
    assert entries < (3001 - first_kept) / 10  # events share entries
