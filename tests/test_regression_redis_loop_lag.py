"""Regression: under load the Redis event store took its own lag for Redis being away.

The writer gave each write round (one pipeline with the new events of many runs) 5 s of wall time.
With 1000 Redis-backed runs and another process on the server's core, rounds took longer although
Redis answered at once: a round queued for a pooled connection behind the runs' own commands, and
every turn of the event loop between sending the pipeline and reading its reply took long. The store
then held the events of every run as if Redis were gone, and runs failed. Now the writer has a
connection of its own and its deadline leaves out the time the loop ran late; a Redis that does not
answer at all (SIGSTOP) still counts as away once the deadline passes.

The write timeout is made small here (`_WRITE_TIMEOUT`) and the loop's lag or the pool's queue longer.
"""
from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator

import attrs
import pytest

from rhetor_stream.runs import redis_store
from rhetor_stream.runs.redis_store import RedisEventStore
from rhetor_stream.runs.store import RUNNING, RunRecord, StoredEvent
from tests.conftest import DisposableRedis, eventually

TIMEOUT = 0.1  # the write timeout in these tests (5 s in the server)
FROZEN_TIMEOUT = 0.5  # where it is measured: well above the test's own hiccups
EVENTS = 100


@attrs.define
class Stores:
    executing: RedisEventStore
    reading: RedisEventStore  # another process on the same Redis: what it reads is in Redis
    away: list[BaseException]  # what the executing store blamed Redis for


@pytest.fixture
def write_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(redis_store, "_WRITE_TIMEOUT", TIMEOUT)


@contextlib.asynccontextmanager
async def _stores(url: str, **options: int) -> AsyncIterator[Stores]:
    # No lease renewal during a test: on Python 3.11 a cancellation that meets one of redis-py's sends
    # as it completes is lost (asyncio.wait_for), and close() would wait for the renewing task forever.
    prefix, lease = f"lag-{time.monotonic_ns()}", 3600.0
    executing = RedisEventStore(url, retention=60, max_events=10_000, prefix=prefix, lease=lease, **options)
    reading = RedisEventStore(url, retention=60, max_events=10_000, prefix=prefix, lease=lease)
    away: list[BaseException] = []
    went_away = executing.went_away

    def blamed(exc: BaseException) -> None:
        away.append(exc)
        went_away(exc)

    executing.went_away = blamed  # type: ignore[method-assign]
    await executing.start(on_cancel=lambda run_id: None)
    await reading.start(on_cancel=lambda run_id: None)
    try:
        await executing.create(RunRecord("r", "Chunks", RUNNING, time.time()))
        yield Stores(executing, reading, away)
    finally:
        await reading.close()
        await executing.close()


@contextlib.contextmanager
def _busy_loop(seconds: float) -> Iterator[None]:
    """Every turn of the event loop spends `seconds` on synchronous work (a thousand runs' worth)."""
    loop = asyncio.get_running_loop()

    def work() -> None:
        nonlocal handle
        time.sleep(seconds)
        handle = loop.call_soon(work)

    handle = loop.call_soon(work)
    try:
        yield
    finally:
        handle.cancel()


def _event(seq: int) -> StoredEvent:
    return StoredEvent(seq, "chunk", b'{"n":%d}' % seq)


def _append(store: RedisEventStore, seq: int) -> None:
    store.append("r", seq, "chunk", _event(seq).data)


async def _produce(stores: Stores) -> None:
    """A run's events in batches, each written by a round of its own, then every one of them read back."""
    for seq in range(1, EVENTS + 1):
        _append(stores.executing, seq)
        if seq % 20 == 0:
            await asyncio.sleep(0)  # a loop turn: the writer starts a round with what came

    async def in_redis() -> bool:
        return await stores.reading.last_seq("r") == EVENTS

    await eventually(in_redis, timeout=60, what="every event written to redis")
    assert await stores.reading.read("r", 0, wait=0) == [_event(seq) for seq in range(1, EVENTS + 1)]


async def test_a_busy_event_loop_is_not_redis_away(redis_url: str, write_timeout: None) -> None:
    async with _stores(redis_url) as stores:
        # A round takes several loop turns (about seven: a connection's check, the send, the reply),
        # so several times the timeout.
        with _busy_loop(TIMEOUT / 2):
            await _produce(stores)
    assert stores.away == []


async def test_a_queue_for_pooled_connections_is_not_redis_away(redis_url: str, write_timeout: None) -> None:
    # Redis answers every command, but the pool's connections are all taken for longer than the timeout.
    async with _stores(redis_url, connections=4) as stores:
        held = [asyncio.ensure_future(stores.executing._redis.blpop(f"nothing-{n}", timeout=1))
                for n in range(8)]
        await asyncio.sleep(0.1)  # every pooled connection is in a BLPOP, the rest queue for one
        await _produce(stores)
        await asyncio.gather(*held)
    assert stores.away == []


async def test_a_frozen_redis_still_counts_as_away(disposable_redis: DisposableRedis,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(redis_store, "_WRITE_TIMEOUT", FROZEN_TIMEOUT)
    loop = asyncio.get_running_loop()
    async with _stores(disposable_redis.url) as stores:
        _append(stores.executing, 1)

        async def written() -> bool:
            return await stores.reading.last_seq("r") == 1

        await eventually(written, what="the first event written")
        disposable_redis.pause()
        try:
            started = loop.time()
            _append(stores.executing, 2)

            async def blamed() -> bool:
                return bool(stores.away)

            await eventually(blamed, timeout=30, what="the frozen redis counted as away")
            took = loop.time() - started
        finally:
            disposable_redis.resume()
        for seq in range(3, EVENTS + 1):
            _append(stores.executing, seq)

        async def in_redis() -> bool:
            return await stores.reading.last_seq("r") == EVENTS

        await eventually(in_redis, timeout=30, what="every event written once redis is back")
        assert await stores.reading.read("r", 0, wait=0) == [_event(seq) for seq in range(1, EVENTS + 1)]
    # As soon as the deadline passed on a loop with time to spare, not later.
    assert FROZEN_TIMEOUT <= took < 3 * FROZEN_TIMEOUT, took
