"""The shared event store: Redis Streams, so any server process can replay and follow any run.

Layout per run: a hash `<prefix>:run:<id>` (tool, status, times) and a stream
`<prefix>:run:<id>:events` whose entry ids are `0-<seq>`, so the log order is the run's own event
order and `XREAD ... 0-<seq>` means exactly "everything after event <seq>". Appends are batched: the
producer never waits for a round trip per event; whatever was appended during one loop turn goes
out in one pipeline. Pipelines go out one at a time (a later one overtaking an earlier one would
make XADD refuse the lower ids), and a run's last events and its final status go in one MULTI, so
no process can read the end of a run whose status still says running. Cancellation travels over a
pub/sub channel every process listens to.

Each process holds a lease, a key `<prefix>:instance:<id>` it keeps renewing, and names itself as
the owner of the runs it starts. A process that dies (kill -9, a lost machine) stops renewing; any
other process that finds one of its runs still running ends it for the waiting clients (`reap`).
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import functools
import secrets
import time
import uuid
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, ParamSpec, TypeVar

from rhetor_stream.runs.store import (RUNNING, EventsExpired, EventStore, RunRecord, StoredEvent,
                                     StoreUnavailable)

try:
    import redis.asyncio as redis
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError
except ImportError:
    raise RuntimeError("the redis event store needs the redis package: from the rhetor_stream checkout, run "
                       ".venv/bin/pip install -e '.[redis]'") from None

log = logging.getLogger("rhetor_stream.runs.redis")

# A run that never finishes (its process died) must not keep its keys forever either.
RUNNING_TTL = 24 * 3600
_SOCKET_TIMEOUT = 30.0
_HEALTH_TIMEOUT = 1.0  # a health check answers fast, whatever Redis does
_PENDING_LIMIT = 1024  # appended but unsent events per run before the producer waits
_RELISTEN_FIRST, _RELISTEN_LAST = 0.5, 5.0  # pauses before listening again after Redis went away

# KEYS: the run's hash, its events, its owner's lease. ARGV: status, finished time, retention (s),
# then event name and data pairs. Atomic, so a run ends once, whoever notices first.
_REAP = """
if redis.call('HGET', KEYS[1], 'status') ~= 'running' or redis.call('EXISTS', KEYS[3]) == 1 then
  return 0
end
local last = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
local seq = 0
if #last > 0 then seq = tonumber(string.match(last[1][1], '-(%d+)$')) end
for i = 4, #ARGV, 2 do
  seq = seq + 1
  redis.call('XADD', KEYS[2], '0-' .. seq, 'e', ARGV[i], 'd', ARGV[i + 1])
end
redis.call('HSET', KEYS[1], 'status', ARGV[1], 'finished', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[3])
return 1
"""

# KEYS: the run's hash. ARGV: the cancel channel, the run id. Flags only a run that exists (a
# flag on an expired run would leave a hash without expiry), and tells every process at once.
_CANCEL = """
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HSET', KEYS[1], 'cancel_requested', 1) end
return redis.call('PUBLISH', ARGV[1], ARGV[2])
"""


P = ParamSpec("P")
T = TypeVar("T")


def _reachable(method: Callable[P, Coroutine[Any, Any, T]]) -> Callable[P, Coroutine[Any, Any, T]]:
    """Redis being away is a StoreUnavailable (HTTP 503 before a stream), not an internal error."""
    @functools.wraps(method)
    async def call(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await method(*args, **kwargs)
        except (RedisConnectionError, RedisTimeoutError) as exc:
            store = args[0]
            assert isinstance(store, RedisEventStore)
            raise StoreUnavailable(store.cannot_reach(exc)) from None
    return call


class RedisEventStore(EventStore):
    shared = True
    kind = "redis"

    def __init__(self, url: str, *, retention: float, max_events: int, lease: float = 15.0,
                 prefix: str = "rhetor") -> None:
        # redis-py's default socket timeout differs between versions (none, then 5 s); a URL's
        # `?socket_timeout=` still wins. A blocking read must end before it, or it fails as a timeout.
        self._redis: Any = redis.from_url(url, socket_timeout=_SOCKET_TIMEOUT, socket_connect_timeout=5)
        socket_timeout = self._redis.connection_pool.connection_kwargs.get("socket_timeout")
        self._longest_block = socket_timeout / 2 if socket_timeout else _SOCKET_TIMEOUT
        self._reap = self._redis.register_script(_REAP)
        self._cancel = self._redis.register_script(_CANCEL)
        self._url = url
        self._ttl = max(1, round(retention))  # seconds a finished run's keys are kept
        self._max_events = max_events
        self._prefix = prefix
        self._lease = lease
        self._instance = uuid.uuid4().hex[:16]
        self._renewing: asyncio.Task[None] | None = None
        self._executing: dict[str, RunRecord] = {}  # runs this process started and has not ended
        self._pending: dict[str, list[StoredEvent]] = {}
        # run id -> final status (and the run's record), written with its last events
        self._ending: dict[str, tuple[str, RunRecord | None]] = {}
        self._writing = asyncio.Lock()
        self._flushing: asyncio.Task[None] | None = None
        self._listener: asyncio.Task[None] | None = None

    async def start(self, on_cancel: Callable[[str], object]) -> None:
        await super().start(on_cancel)
        try:
            await self._redis.ping()
        except Exception as exc:
            raise RuntimeError(self.cannot_reach(exc)) from None
        await self._renew()
        self._renewing = asyncio.create_task(self._keep_renewing(), name="rhetor_stream redis lease")
        pubsub = self._redis.pubsub()
        await pubsub.subscribe(self._cancel_channel)
        self._listener = asyncio.create_task(self._listen(pubsub), name="rhetor_stream redis cancel")

    def cannot_reach(self, exc: BaseException) -> str:
        """The one way this store says Redis is out of reach: where (no password) and why."""
        return f"cannot reach the redis event store at {_safe(self._url)}: {exc or type(exc).__name__}"

    async def close(self) -> None:
        for task in (self._listener, self._renewing):
            if task is not None:
                task.cancel()
                await asyncio.wait({task})
        try:
            await self._flush()
            await self._redis.delete(self._lease_key(self._instance))
        except Exception as exc:  # shutting down with Redis gone: say so, without a traceback
            log.warning("could not write the last run events to redis at shutdown: %s", exc)
        await self._redis.aclose()

    @_reachable
    async def create(self, record: RunRecord) -> None:
        await self._put_running(record)
        self._executing[record.run_id] = record

    def append(self, run_id: str, event: StoredEvent) -> None:
        self._pending.setdefault(run_id, []).append(event)
        self._schedule_flush()

    async def wait_written(self, run_id: str) -> None:
        if len(self._pending.get(run_id, ())) >= _PENDING_LIMIT and self._flushing is not None:
            await asyncio.shield(self._flushing)

    def end(self, run_id: str, status: str) -> None:
        self._ending[run_id] = (status, self._executing.pop(run_id, None))
        self._schedule_flush()

    @_reachable
    async def get(self, run_id: str) -> RunRecord | None:
        fields = await self._redis.hgetall(self._run_key(run_id))
        if not fields:
            return None
        text = {key.decode(): value.decode() for key, value in fields.items()}
        finished = text.get("finished")
        return RunRecord(run_id, text["tool_name"], text["status"], float(text["created"]),
                         float(finished) if finished else None, text.get("owner", ""))

    @_reachable
    async def read(self, run_id: str, after: int, *, wait: float) -> list[StoredEvent]:
        block = {"block": max(1, round(min(wait, self._longest_block) * 1000))} if wait > 0 else {}
        reply = await self._redis.xread({self._events_key(run_id): f"0-{after}"}, count=1000, **block)
        if not reply:
            return []
        entries = reply[0][1]
        events = [StoredEvent(int(entry_id.split(b"-")[1]), fields[b"e"].decode(), fields[b"d"])
                  for entry_id, fields in entries]
        if events and events[0].seq > after + 1:
            raise EventsExpired(run_id, events[0].seq)
        return events

    @_reachable
    async def last_seq(self, run_id: str) -> int:
        last = await self._redis.xrevrange(self._events_key(run_id), count=1)
        return int(last[0][0].split(b"-")[1]) if last else 0

    @_reachable
    async def request_cancel(self, run_id: str) -> None:
        # The flag outlasts a cut channel (see `_listen`); the message is what makes it instant.
        await self._cancel(keys=[self._run_key(run_id)], args=[self._cancel_channel, run_id])

    @_reachable
    async def reap(self, record: RunRecord, status: str, final: Sequence[tuple[str, bytes]]) -> bool:
        if record.owner in ("", self._instance):
            return False  # this process's own runs end through their recorder
        keys = [self._run_key(record.run_id), self._events_key(record.run_id), self._lease_key(record.owner)]
        frames = [part for event, data in final for part in (event, data)]
        reaped = await self._reap(keys=keys, args=[status, time.time(), self._ttl, *frames])
        if reaped:
            log.warning("run %s (%s) ended as lost: its server process %s stopped renewing its lease",
                        record.run_id, record.tool_name, record.owner)
        return bool(reaped)

    async def shared_secret(self) -> bytes:
        """The first process to start puts a random secret in Redis; the others (and later
        restarts) read that one, so a run token issued by any process is accepted by all."""
        key = f"{self._prefix}:capability_secret"
        try:
            await self._redis.set(key, secrets.token_hex(32), nx=True)
            value = await self._redis.get(key)
        except (RedisConnectionError, RedisTimeoutError) as exc:
            raise RuntimeError(self.cannot_reach(exc)) from None
        return value if isinstance(value, bytes) else str(value).encode()

    async def problem(self) -> str | None:
        try:
            await asyncio.wait_for(self._redis.ping(), _HEALTH_TIMEOUT)
        except (RedisConnectionError, RedisTimeoutError, asyncio.TimeoutError) as exc:
            return self.cannot_reach(exc)
        return None

    async def _renew(self) -> bool:
        """Renew this process's lease; True when it had lapsed (Redis restarted, or was away)."""
        key = self._lease_key(self._instance)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.exists(key)
            pipe.set(key, "1", px=max(1, round(self._lease * 1000)))
            existed, _ = await pipe.execute()
        return not existed

    async def _keep_renewing(self) -> None:
        while True:
            await asyncio.sleep(self._lease / 3)
            try:
                if await self._renew():
                    await self._reassert()
            except Exception as exc:  # Redis away for a moment: the next renewal may still make it
                log.warning("renewing this process's lease in redis failed: %s", exc)

    async def _reassert(self) -> None:
        """After a lapse, put back the records of runs still executing here that Redis lost (a
        restart without persistence), and stop the ones another process already ended as lost:
        nobody can follow them any more, so their tokens would be paid for nothing."""
        restored = stopped = 0
        for run_id, record in list(self._executing.items()):
            status = await self._redis.hget(self._run_key(run_id), "status")
            if status is None:
                await self._put_running(record)
                restored += 1
            elif status.decode() != RUNNING:
                self._on_cancel(run_id)
                stopped += 1
        log.warning("this process's lease in redis had lapsed: %d run(s) restored, %d stopped "
                    "(ended elsewhere as lost)", restored, stopped)

    def _schedule_flush(self) -> None:
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.create_task(self._flush())
            self._flushing.add_done_callback(_report_failure)

    async def _flush(self) -> None:
        async with self._writing:
            while self._pending or self._ending:
                batch, self._pending = self._pending, {}
                ending, self._ending = self._ending, {}
                async with self._redis.pipeline(transaction=bool(ending)) as pipe:
                    for run_id, events in batch.items():
                        for event in events:
                            pipe.xadd(self._events_key(run_id), {"e": event.event, "d": event.data},
                                      id=f"0-{event.seq}", maxlen=self._max_events, approximate=True)
                        if run_id not in ending:
                            pipe.expire(self._events_key(run_id), RUNNING_TTL)
                    for run_id, (status, record) in ending.items():
                        self._end_in(pipe, run_id, status, record)
                    await pipe.execute()

    def _end_in(self, pipe: Any, run_id: str, status: str, record: RunRecord | None) -> None:
        # The whole record, not only the status: it restores one that Redis lost meanwhile.
        fields = {"status": status} if record is None else self._fields(record, status)
        pipe.hset(self._run_key(run_id), mapping={**fields, "finished": time.time()})
        pipe.expire(self._run_key(run_id), self._ttl)
        pipe.expire(self._events_key(run_id), self._ttl)

    async def _put_running(self, record: RunRecord) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(self._run_key(record.run_id), mapping=self._fields(record, RUNNING))
            pipe.expire(self._run_key(record.run_id), RUNNING_TTL)
            await pipe.execute()

    def _fields(self, record: RunRecord, status: str) -> dict[str, Any]:
        return {"tool_name": record.tool_name, "status": status, "created": record.created,
                "owner": self._instance}

    async def _listen(self, pubsub: Any) -> None:
        """Hear cancellations for as long as the process lives, through Redis restarts too."""
        pause = _RELISTEN_FIRST
        with contextlib.suppress(asyncio.CancelledError):
            while True:
                try:
                    async for message in pubsub.listen():
                        if message.get("type") == "message":
                            self._on_cancel(message["data"].decode())
                        elif message.get("type") == "subscribe":  # (re)subscribed: catch up
                            pause = _RELISTEN_FIRST
                            await self._cancel_requested_while_away()
                except (RedisConnectionError, RedisTimeoutError) as exc:
                    # redis-py reconnects and subscribes again on the next listen.
                    log.warning("lost the redis cancel channel (%s); listening again in %.1f s", exc, pause)
                    await asyncio.sleep(pause)
                    pause = min(pause * 2, _RELISTEN_LAST)
        await pubsub.aclose()

    async def _cancel_requested_while_away(self) -> None:
        """A message published while the channel was cut is gone; the run's hash still says it."""
        for run_id in list(self._executing):
            if await self._redis.hget(self._run_key(run_id), "cancel_requested"):
                self._on_cancel(run_id)

    @property
    def _cancel_channel(self) -> str:
        return f"{self._prefix}:cancel"

    def _lease_key(self, instance: str) -> str:
        return f"{self._prefix}:instance:{instance}"

    def _run_key(self, run_id: str) -> str:
        return f"{self._prefix}:run:{run_id}"

    def _events_key(self, run_id: str) -> str:
        return f"{self._prefix}:run:{run_id}:events"


def _report_failure(flush: asyncio.Task[None]) -> None:
    """Nobody awaits a background flush, so its failure (events lost) must reach the log here."""
    exc = None if flush.cancelled() else flush.exception()
    if isinstance(exc, (RedisConnectionError, RedisTimeoutError)):
        log.error("writing run events to redis failed, they are lost: %s", exc)
    elif exc is not None:
        log.error("writing run events to redis failed, they are lost", exc_info=exc)


def _safe(url: str) -> str:
    """The URL without its password, for error messages."""
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    return f"{scheme}{sep}{'***@' if at else ''}{host}"
