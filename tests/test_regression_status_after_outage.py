"""Regression: a run that ended while Redis was away still said `running` once Redis was back, until
the writer's next try put its end in Redis (up to a second later): its client had read `complete` and
`disconnect` (served from what the process holds) and then found a status that contradicted them, or
none at all when Redis came back empty, and a last event number below the one it had. The store's
promise is that a reader who has seen a run's last event finds its final status too. (The writer is
kept from trying again here, so the window stays open for as long as the test needs.)"""
from __future__ import annotations

import asyncio
import time

import pytest

from rhetor_stream.runs import redis_store
from rhetor_stream.runs.redis_store import RedisEventStore
from rhetor_stream.runs.store import RUNNING, RunRecord
from tests.conftest import DisposableRedis, eventually


@pytest.mark.parametrize("keep_data", [True, False], ids=["data-kept", "data-lost"])
async def test_a_run_that_ended_while_redis_was_away_says_so_once_it_is_back(
        disposable_redis: DisposableRedis, keep_data: bool, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(redis_store, "_REWRITE_FIRST", 600.0)
    monkeypatch.setattr(redis_store, "_REWRITE_LAST", 600.0)
    store = RedisEventStore(disposable_redis.url, retention=60, max_events=100)
    await store.start(on_cancel=lambda run_id: None)
    try:
        await store.create(RunRecord("r1", "Echo", RUNNING, time.time()))
        await asyncio.to_thread(disposable_redis.stop, keep_data=keep_data)
        store.append("r1", 1, "complete", b"{}")
        store.append("r1", 2, "disconnect", b"{}")
        store.end("r1", "complete")

        async def holding() -> bool:
            return "holding the events" in caplog.text

        await eventually(holding, what="the writer found Redis away")
        await asyncio.to_thread(disposable_redis.start)
        assert [event.event for event in await store.read("r1", 0, wait=0)] == ["complete", "disconnect"]
        record = await store.get("r1")
        assert record is not None and record.status == "complete", record
        assert await store.last_seq("r1") == 2  # (a resume from #2 is then "all seen", not "past the end")
    finally:
        await store.close()
