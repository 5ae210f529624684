"""The shared event store: Redis Streams, so any server process can replay and follow any run.

Layout per run: a hash `<prefix>:v2:run:<id>` (tool, status, times) and a stream
`<prefix>:v2:run:<id>:events` whose entries each hold a run of consecutive events (fields `f`, the first
event's number, and `b`, the events as `name LF data LF` each; names never hold a line break, and
orjson never writes one), with the entry id `0-<number of its last event>`: the log's order is the
run's own event order, and `XREAD ... 0-<seq>` returns every entry holding an event after <seq> (the
first may hold some before it, which the reader skips). One entry per batch rather than one per event
is what makes Redis cheap per event: an XADD costs Redis a few microseconds however small the entry,
ten times what the event's bytes cost it. (`v2` names this layout: the first one had an entry per
event under `<prefix>:run:<id>`. Processes of both versions sharing one Redis each see only their
own runs, rather than misreading each other's logs; the old keys expire with their retention.)
Appends are batched: the producer never waits for a round
trip per event; whatever was appended during one loop turn goes out in one pipeline, one script call
per run (`_APPEND`) that adds the run's new events and, at its end, its final status at once, so no
process can read the end of a run whose status still says running. Pipelines go out one at a time (a
later one overtaking an earlier one would make XADD refuse the lower ids). Cancellation travels over
a pub/sub channel every process listens to.

Redis going away is not the end of a run. The events of this process's runs are held in memory
(`runs/held.py`, `--event-store-buffer-bytes`) until Redis confirms them, and written when it is
back: in order, with no gap, and with no duplicate (the script skips what the log already has, so a
batch whose reply was lost with the connection can be sent again). A Redis that comes back empty (a
restart without persistence) gets the records and the held tail of every running run written again.
Meanwhile this process's own subscribers are served from what it holds, and subscribers of other
runs wait, retrying, with heartbeats flowing. Only a run whose events no longer fit in the buffer
ends, with an `error` event of code `event_store_unavailable` and a `disconnect`.

Reads. A follower of a run executing in this process (the client of `POST /stream`, the common case)
reads no Redis at all: the held tail serves it the events Redis confirmed, and falls back to Redis
only when the events it needs were forgotten (it fell that far behind, or the run ended seconds
ago). Such a run's last event number and final status come from this process too, so whoever read
its end finds them even before Redis has them (say, back from an outage, before the next write).
Followers of runs executing elsewhere that have caught up share one blocking XREAD (`_Followers`),
so a thousand of them hold one connection, not a thousand; a new one interrupts that XREAD through a
wake-up stream of this process's own rather than waiting out its block. Everything else is short
commands on a bounded pool (`--event-store-connections`, less the writer's own connection) that
waits for a free connection rather than failing with "Too many connections".

Each process holds a lease, a key `<prefix>:instance:<id>` it keeps renewing, and names itself as
the owner of the runs it starts. A process that dies (kill -9, a lost machine) stops renewing; any
other process that finds one of its runs still running ends it for the waiting clients (`reap`).
"""
from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
import secrets
import time
import uuid
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, ParamSpec, TypeVar

import attrs

from rhetor_stream.backoff import Backoff
from rhetor_stream.runs.held import Batch, HeldEvents, RunEvents
from rhetor_stream.runs.store import (
    RUNNING,
    EventsExpired,
    EventStore,
    RunRecord,
    StoredEvent,
    StoreMisconfigured,
    StoreUnavailable,
    unheard,
)
from rhetor_stream.tasks import cancel_and_wait

try:
    import redis.asyncio as redis
    from redis.asyncio.connection import BlockingConnectionPool
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff
    from redis.exceptions import (
        AuthenticationError,
        AuthenticationWrongNumberOfArgsError,
        NoPermissionError,
        NoScriptError,
        RedisError,
    )
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
_REWRITE_FIRST, _REWRITE_LAST = 0.05, 1.0  # pauses between tries to write held events
_WRITE_TIMEOUT = 5.0  # a write Redis does not answer (a hung server) counts as Redis away: see _Answered
_LAYOUT = "v2"  # in every run's keys: see the layout above
_READ_COUNT = 1000  # entries one XREAD returns per stream
# Events one stream entry holds at most: a reader that resumes in the middle of an entry reads all of
# it, and a batch written after an outage may be thousands of events.
_ENTRY_EVENTS = 128
_POOL_TIMEOUT = 20.0  # seconds a command waits for a free pooled connection before it fails
# Redis refusing the credentials of the URL (a wrong or missing password or user): an operator has
# to fix that, however long a client waits.
_REFUSED = (AuthenticationError, AuthenticationWrongNumberOfArgsError)
# What makes a command fail for a reason of the store's, not of the command: StoreUnavailable. A
# user whose ACL forbids a command we need (NOPERM) is refused too.
_UNSERVED = (RedisConnectionError, RedisTimeoutError, *_REFUSED, NoPermissionError)

# KEYS: the run's events, its hash. ARGV: the top the log must have, the events bound, the keys'
# expiry (s), 'end' or 'run', then the hash fields' count and pairs, then the first event's number,
# then one entry after another: the number of its last event and its events (see the layout above;
# the client cuts a batch into entries of at most _ENTRY_EVENTS events).
# Appends only what is above the log's top, so a batch sent twice adds nothing twice. A log whose top
# is below the expected one lost what this process wrote (Redis restarted empty): nothing is written
# and the top is returned, for the caller to write again what it still holds. The bound drops the
# entries whose events are all older than the last `bound` ones. 'end' writes the final record; 'run'
# puts back a running record that is missing. -1: written; -2: the run was ended elsewhere (reaped as
# lost while this process could not renew its lease): its log is left alone.
_APPEND = """
local status = redis.call('HGET', KEYS[2], 'status')
if status and status ~= 'running' then return -2 end
local top = 0
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
if #last > 0 then top = tonumber(string.match(last[1][1], '-(%d+)$')) end
if top < tonumber(ARGV[1]) then return top end
local fields = tonumber(ARGV[5]) * 2
local first = tonumber(ARGV[6 + fields])
for i = 7 + fields, #ARGV, 2 do
  local upto = tonumber(ARGV[i])
  if upto > top then
    local batch = ARGV[i + 1]
    if first <= top then  -- sent again after a lost reply: skip what the log has
      local at = 1
      while first <= top do
        at = string.find(batch, '\\n', string.find(batch, '\\n', at, true) + 1, true) + 1
        first = first + 1
      end
      batch = string.sub(batch, at)
    end
    redis.call('XADD', KEYS[1], 'MINID', '0-' .. math.max(upto - tonumber(ARGV[2]), 0), '0-' .. upto,
               'f', first, 'b', batch)
  end
  first = upto + 1
end
if fields > 0 and (ARGV[4] == 'end' or redis.call('EXISTS', KEYS[2]) == 0) then
  redis.call('HSET', KEYS[2], unpack(ARGV, 6, 5 + fields))
  redis.call('EXPIRE', KEYS[2], ARGV[3])
end
redis.call('EXPIRE', KEYS[1], ARGV[3])
return -1
"""
_APPEND_SHA = hashlib.sha1(_APPEND.encode()).hexdigest()

# KEYS: the run's hash, its events, its owner's lease. ARGV: status, finished time, retention (s),
# then the number of final events and the events as one entry's `b`. Atomic, so a run ends once,
# whoever notices first.
_REAP = """
if redis.call('HGET', KEYS[1], 'status') ~= 'running' or redis.call('EXISTS', KEYS[3]) == 1 then
  return 0
end
local last = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
local seq = 0
if #last > 0 then seq = tonumber(string.match(last[1][1], '-(%d+)$')) end
if tonumber(ARGV[4]) > 0 then
  redis.call('XADD', KEYS[2], '0-' .. (seq + tonumber(ARGV[4])), 'f', seq + 1, 'b', ARGV[5])
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


def _client(url: str, connections: int) -> Any:
    """A client on a pool of its own of at most `connections` connections (see RedisEventStore)."""
    pool = BlockingConnectionPool.from_url(url, max_connections=connections, timeout=_POOL_TIMEOUT,
                                           socket_timeout=_SOCKET_TIMEOUT, socket_connect_timeout=5,
                                           retry=Retry(NoBackoff(), 1))
    return redis.Redis.from_pool(pool)


class _Answered:
    """Like `asyncio.timeout(seconds)`, plus the time this process's own event loop ran late meanwhile.

    A write round Redis leaves unanswered for `seconds` means Redis is away (hung: SIGSTOP, a stuck
    host). But a round's wall time also holds whatever else the loop runs between sending the pipeline
    and parsing its reply, and with a thousand busy runs and another process on the core every loop
    turn takes long: a round Redis answered at once then passed the deadline, and the store held the
    events of every run, blaming Redis for our own lag. So the deadline is checked every fiftieth of
    `seconds`, and how late each check ran (time the loop spent elsewhere) moves it back: on a loop
    with time to spare a hung Redis still times out after `seconds`, on one where every turn takes
    long a round has at least fifty turns (a reconnection's handshake takes about thirty). Redis-py's
    socket timeout still ends a round that never gets an answer. (A class, not a generator: one is
    entered per write round.)
    """

    __slots__ = ("_seconds", "_loop", "_timeout", "_started", "_late", "_handle")

    def __init__(self, seconds: float) -> None:
        self._seconds = seconds
        self._loop = asyncio.get_running_loop()
        self._timeout = asyncio.timeout(None)
        self._started = self._late = 0.0
        self._handle: asyncio.TimerHandle | None = None

    async def __aenter__(self) -> None:
        await self._timeout.__aenter__()
        self._started = self._loop.time()
        self._check_at(self._started + self._seconds / 50)

    async def __aexit__(self, *exc_info: Any) -> None:
        if self._handle is not None:
            self._handle.cancel()
        await self._timeout.__aexit__(*exc_info)  # (a TimeoutError if it expired)

    def _check_at(self, when: float) -> None:
        self._handle = self._loop.call_at(when, self._check, when)

    def _check(self, due: float) -> None:
        now = self._loop.time()
        self._late += now - due
        left = self._started + self._late + self._seconds - now
        if left <= 0:
            self._timeout.reschedule(now)  # expires now: the round ends with a TimeoutError
        else:
            self._check_at(now + min(self._seconds / 50, left))


def _reachable(method: Callable[P, Coroutine[Any, Any, T]]) -> Callable[P, Coroutine[Any, Any, T]]:
    """Redis being away (or refusing us) is a StoreUnavailable (HTTP 503 before a stream), not an
    internal error; and the store starts watching for its return."""
    @functools.wraps(method)
    async def call(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await method(*args, **kwargs)
        except _UNSERVED as exc:
            store = args[0]
            assert isinstance(store, RedisEventStore)
            store.went_away(exc)
            raise store.unavailable(exc) from None
    return call


class RedisEventStore(EventStore):
    shared = True
    kind = "redis"

    def __init__(self, url: str, *, retention: float, max_events: int, lease: float = 15.0,
                 prefix: str = "rhetor", buffer_bytes: int = 32 * 1024 * 1024,
                 connections: int = 32) -> None:
        # redis-py's default socket timeout differs between versions (none, then 5 s); a URL's
        # `?socket_timeout=` still wins. A blocking read must end before it, or it fails as a timeout.
        # One retry at once covers a pooled connection that a Redis restart cut; beyond that this
        # store retries itself, holding events meanwhile (redis-py's own backoff would stall it).
        # The pool waits for a free connection: a burst of requests queues instead of failing.
        self._redis: Any = _client(url, connections - 1)
        # The writer's own connection, out of the same budget: a round queued behind a thousand runs'
        # commands for a pooled one took seconds under load, and its deadline blamed Redis for it.
        self._writer: Any = _client(url, 1)
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
        self._held = HeldEvents(buffer_bytes)
        # Runs with events or an end to write: a write round looks at these, not at every open run.
        self._dirty: dict[str, RunEvents] = {}
        self._away: BaseException | None = None  # what Redis failed with, while it cannot serve us
        self._recheck = False  # after an outage: check every held run's log and record in Redis
        self._writing = asyncio.Lock()
        self._flushing: asyncio.Task[None] | None = None
        self._round: asyncio.Future[None] | None = None  # done when the current write round ends
        self._listener: asyncio.Task[None] | None = None
        self._followers = _Followers(self._redis, f"{prefix}:wake:{self._instance}", self._longest_block)

    async def start(self, on_cancel: Callable[[str], object],
                    on_overflow: Callable[[str], object] = unheard) -> None:
        await super().start(on_cancel, on_overflow)
        try:
            await self._redis.ping()
        except Exception as exc:
            raise self.unavailable(exc) from None
        await self._renew()
        self._renewing = asyncio.create_task(self._keep_renewing(), name="rhetor_stream redis lease")
        pubsub = self._redis.pubsub()
        await pubsub.subscribe(self._cancel_channel)
        self._listener = asyncio.create_task(self._listen(pubsub), name="rhetor_stream redis cancel")

    def unavailable(self, exc: BaseException) -> StoreUnavailable:
        """The one way this store says Redis cannot serve it: where (no password) and why. Refused
        credentials are a StoreMisconfigured: no client retry fixes those."""
        where = _safe(self._url)
        if isinstance(exc, NoPermissionError):
            return StoreMisconfigured(f"the redis event store at {where} refused a command to the user of "
                                      f"--event-store: {exc}")
        if isinstance(exc, _REFUSED):
            return StoreMisconfigured(f"the redis event store at {where} refused the credentials of "
                                      f"--event-store (a wrong or missing user or password): {exc}")
        return StoreUnavailable(f"cannot reach the redis event store at {where}: {exc or type(exc).__name__}")

    async def close(self) -> None:
        self._followers.close()
        for task in (self._listener, self._renewing, self._flushing):
            if task is not None:
                await cancel_and_wait(task)
        try:
            while True:
                async with _Answered(_WRITE_TIMEOUT):
                    if not await self._write_round():
                        break
            await self._redis.delete(self._lease_key(self._instance))
        except (TimeoutError, RedisError) as exc:  # shutting down with Redis gone: say so
            unwritten = sum(run.last - run.written for run in self._dirty.values())
            log.warning("could not write the last %d run event(s) to redis at shutdown: %s", unwritten,
                        exc or type(exc).__name__)
        await self._writer.aclose()
        await self._redis.aclose()

    @_reachable
    async def create(self, record: RunRecord) -> None:
        await self._put_running(record)
        self._executing[record.run_id] = record
        self._held.open(record.run_id)

    def append(self, run_id: str, seq: int, event: str, data: bytes) -> bool:
        run = self._held.get(run_id) or self._held.open(run_id)
        fits = self._held.add(run, seq, event, data)
        if self._away is not None:
            run.wake()  # its followers here read the unwritten events too meanwhile
        if not fits and self._away is not None and not run.overflowed:
            run.overflowed = True
            log.warning("run %s ends: %d bytes of events wait for the redis event store, more than "
                        "--event-store-buffer-bytes (%d) allows (%s)", run_id, self._held.bytes,
                        self._held.limit, self.unavailable(self._away))
            self._on_overflow(run_id)
        self._dirty[run_id] = run
        self._schedule_flush()
        return self._behind(run)

    async def wait_written(self, run_id: str) -> None:
        # Backpressure while Redis keeps up; while it is away, the buffer's budget bounds the run.
        run = self._held.get(run_id)
        while (run is not None and self._away is None and self._flushing is not None
               and not self._flushing.done() and self._behind(run)):
            if self._round is None or self._round.done():
                self._round = asyncio.get_running_loop().create_future()
            await asyncio.shield(self._round)

    def end(self, run_id: str, status: str) -> None:
        run = self._held.get(run_id) or self._held.open(run_id)
        run.ending = (status, self._executing.pop(run_id, None))
        self._dirty[run_id] = run
        self._schedule_flush()

    @_reachable
    async def get(self, run_id: str) -> RunRecord | None:
        held = self._held.get(run_id)
        status, record = held.ending if held is not None and held.ending is not None else (RUNNING, None)
        if record is not None:
            # Ended here, and maybe not yet in Redis (it was away, and the writer waits to try again):
            # its followers here may have read its last event, so its final status is what they find.
            return attrs.evolve(record, status=status, owner=self._instance)
        fields = await self._redis.hgetall(self._run_key(run_id))
        if not fields:
            return None
        text = {key.decode(): value.decode() for key, value in fields.items()}
        finished = text.get("finished")
        return RunRecord(run_id, text["tool_name"], text["status"], float(text["created"]),
                         float(finished) if finished else None, text.get("owner", ""))

    async def read(self, run_id: str, after: int, *, wait: float) -> list[StoredEvent]:
        """From what this process holds of its own runs while that covers `after`: the events Redis
        confirmed, or all of them while Redis is away. Otherwise from Redis."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        run = self._held.readable(run_id)
        while run is not None and run.covers(after):
            top = run.written if self._away is None else run.last
            if top > after:
                return run.after(after, top)
            if run.closed:
                break  # all read (or ended elsewhere): the rest, if any, is in Redis
            left = deadline - loop.time()
            if left <= 0:
                return []
            await run.wait(left)  # written, held while away, forgotten, or the time is up
        if self._away is not None:
            raise self.unavailable(self._away)
        return await self._read_log(run_id, after, max(deadline - loop.time(), 0.0) if wait > 0 else 0.0)

    def went_away(self, exc: BaseException) -> None:
        """Redis failed a command: hold events, serve subscribers from them, and probe until it is back."""
        if self._away is None:
            self._away = exc
            log.warning("%s; holding the events of %d run(s) until it is back (at most %d bytes)",
                        self.unavailable(exc), len(self._held), self._held.limit)
            for run in self._held.runs():
                run.wake()  # their followers here read the unwritten events meanwhile
        self._schedule_flush()

    @_reachable
    async def _read_log(self, run_id: str, after: int, wait: float) -> list[StoredEvent]:
        """What the log has after `after` at once; if nothing and `wait`, wait with the others."""
        key = self._events_key(run_id)
        reply = await self._redis.xread({key: f"0-{after}"}, count=_READ_COUNT)
        events = _events(reply[0][1], after) if reply else []
        if not events and wait > 0:
            events = await self._followers.wait(key, after, wait)
        if events and events[0].seq > after + 1:
            raise EventsExpired(run_id, events[0].seq)
        return events

    async def last_seq(self, run_id: str) -> int:
        # A run of this process: it knows its last event, written to Redis or not yet (like `get`).
        run = self._held.readable(run_id)
        return run.last if run is not None else await self._last_in_log(run_id)

    @_reachable
    async def _last_in_log(self, run_id: str) -> int:
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
        reaped = await self._reap(keys=keys, args=[status, time.time(), self._ttl, len(final),
                                                   _entry([event for event, _ in final], [data for _, data in final])])
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
        except _UNSERVED as exc:
            raise self.unavailable(exc) from None
        return value if isinstance(value, bytes) else str(value).encode()

    async def problem(self) -> str | None:
        try:
            await asyncio.wait_for(self._redis.ping(), _HEALTH_TIMEOUT)
        except (TimeoutError, *_UNSERVED) as exc:
            return self.unavailable(exc).message
        return None

    async def _renew(self) -> bool:
        """Renew this process's lease; True when it had lapsed (Redis restarted, or was away)."""
        key = self._lease_key(self._instance)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.exists(key)
            pipe.set(key, "1", px=self._lease_ms)
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
        self._recheck = True  # and the logs: write again what Redis lost of them
        self._schedule_flush()
        log.warning("this process's lease in redis had lapsed: %d run(s) restored, %d stopped "
                    "(ended elsewhere as lost)", restored, stopped)

    def _behind(self, run: RunEvents) -> bool:
        """Too much of `run` waits to be written: its producer should wait for the writer."""
        return run.last - run.written >= _PENDING_LIMIT or self._held.bytes > self._held.limit

    def _schedule_flush(self) -> None:
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.create_task(self._keep_writing())
            self._flushing.add_done_callback(_report_failure)

    async def _keep_writing(self) -> None:
        """Write rounds until nothing is left; while Redis is away, try again with growing pauses."""
        backoff = Backoff(_REWRITE_FIRST, _REWRITE_LAST)
        while True:
            try:
                async with _Answered(_WRITE_TIMEOUT):
                    wrote = await self._write_round()
            except (TimeoutError, RedisError) as exc:
                self.went_away(exc)
                self._round_ended()
                await backoff.wait()
                continue
            self._round_ended()
            backoff.reset()
            if self._away is not None:
                self._came_back()
            elif not wrote and not self._to_write():  # (events added while the round returned)
                return

    def _to_write(self) -> list[RunEvents]:
        runs = self._held.runs() if self._recheck else list(self._dirty.values())
        return [run for run in runs
                if run.last > run.written or run.ending is not None or (self._recheck and run.written)]

    async def _write_round(self) -> bool:
        """One pipeline with what is unwritten; False when there was nothing to write."""
        async with self._writing:
            recheck = self._recheck
            runs = [(run, run.unwritten(), run.ending) for run in self._to_write()]
            if not runs:
                if self._away is not None:
                    await self._writer.ping()  # is it back?
                return False
            async with self._writer.pipeline(transaction=False) as pipe:
                if recheck:  # Redis may have lost the lease too: no other process may reap our runs
                    pipe.set(self._lease_key(self._instance), "1", px=self._lease_ms)
                for run, events, ending in runs:
                    pipe.evalsha(_APPEND_SHA, 2, self._events_key(run.run_id), self._run_key(run.run_id),
                                 *self._append_args(run, events, ending))
                try:
                    replies = await pipe.execute()
                except NoScriptError:  # a new or restarted Redis: the batch is sent again
                    await self._writer.script_load(_APPEND)
                    return True
            self._recheck = self._recheck and not recheck
            for (run, events, ending), top in zip(runs, replies[1:] if recheck else replies):
                if top == -2:
                    self._ended_elsewhere(run)
                elif top >= 0:
                    self._write_again(run, top)
                else:
                    if events.names:
                        run.written = run.top = events.last
                        run.wake()  # its followers here read what Redis now has
                    if ending is not None:
                        self._held.close(run)
                    if run.closed or (run.last == run.written and run.ending is None):
                        self._dirty.pop(run.run_id, None)  # (unless more came during the round)
            self._held.make_room(spare=self._held.limit // 16)
            return True

    def _append_args(self, run: RunEvents, events: Batch,
                     ending: tuple[str, RunRecord | None] | None) -> list[Any]:
        if ending is not None:
            status, record = ending
            # The whole record, not only the status: it restores one that Redis lost meanwhile.
            fields: dict[str, Any] = {"status": status} if record is None else self._fields(record, status)
            fields["finished"] = time.time()
            mode, ttl = "end", self._ttl
        else:
            record = self._executing.get(run.run_id)
            fields = {} if record is None else self._fields(record, RUNNING)
            mode, ttl = "run", RUNNING_TTL
        args: list[Any] = [run.top, self._max_events, ttl, mode, len(fields)]
        for pair in fields.items():
            args.extend(pair)
        args.append(events.first if events.names else 0)
        for at in range(0, len(events.names), _ENTRY_EVENTS):
            names, datas = events.names[at:at + _ENTRY_EVENTS], events.datas[at:at + _ENTRY_EVENTS]
            args.append(events.first + at + len(names) - 1)
            args.append(_entry(names, datas))
        return args

    def _write_again(self, run: RunEvents, top: int) -> None:
        """Redis lost the run's log above `top`: write again what is held, and say what is gone."""
        first = run.oldest()
        run.written = max(top, first - 1)  # unwritten events are never forgotten: not above before
        run.top = top
        gone = f"#{top + 1} to #{run.written} are gone, " if run.written > top else ""
        log.warning("redis lost the events of run %s: %swriting them again from #%d", run.run_id, gone,
                    run.written + 1)
        self._recheck = True  # its record too, even with nothing left to write

    def _ended_elsewhere(self, run: RunEvents) -> None:
        self._held.close(run, linger=False)
        self._dirty.pop(run.run_id, None)
        if self._executing.pop(run.run_id, None) is not None:
            log.warning("run %s was ended elsewhere as lost while redis was away; it stops here", run.run_id)
            self._on_cancel(run.run_id)

    def _round_ended(self) -> None:
        if self._round is not None and not self._round.done():
            self._round.set_result(None)

    def _came_back(self) -> None:
        log.warning("the redis event store at %s is back; writing the held events of %d run(s)",
                    _safe(self._url), len(self._held))
        self._away = None
        self._recheck = True
        for run in self._held.runs():
            run.wake()  # their subscribers read from Redis again

    async def _put_running(self, record: RunRecord) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(self._run_key(record.run_id), mapping=self._fields(record, RUNNING))
            pipe.expire(self._run_key(record.run_id), RUNNING_TTL)
            await pipe.execute()

    @property
    def _lease_ms(self) -> int:
        return max(1, round(self._lease * 1000))

    def _fields(self, record: RunRecord, status: str) -> dict[str, Any]:
        return {"tool_name": record.tool_name, "status": status, "created": record.created,
                "owner": self._instance}

    async def _listen(self, pubsub: Any) -> None:
        """Hear cancellations for as long as the process lives, through Redis restarts too."""
        backoff = Backoff(_RELISTEN_FIRST, _RELISTEN_LAST)
        with contextlib.suppress(asyncio.CancelledError):
            while True:
                try:
                    async for message in pubsub.listen():
                        if message.get("type") == "message":
                            self._on_cancel(message["data"].decode())
                        elif message.get("type") == "subscribe":  # (re)subscribed: catch up
                            backoff.reset()
                            await self._cancel_requested_while_away()
                except (RedisConnectionError, RedisTimeoutError) as exc:
                    # redis-py reconnects and subscribes again on the next listen.
                    pause = backoff.next()
                    log.warning("lost the redis cancel channel (%s); listening again in %.1f s", exc, pause)
                    await asyncio.sleep(pause)
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
        return f"{self._prefix}:{_LAYOUT}:run:{run_id}"

    def _events_key(self, run_id: str) -> str:
        return f"{self._prefix}:{_LAYOUT}:run:{run_id}:events"


def _entry(names: Sequence[str], datas: Sequence[bytes]) -> bytes:
    """Consecutive events (their names and data) as one stream entry's `b` field (see the layout above)."""
    parts = []
    for name, data in zip(names, datas):  # (half the time of a `b"%s\n%s\n" %` per event)
        parts.append(name.encode())
        parts.append(data)
    parts.append(b"")
    return b"\n".join(parts)


def _events(entries: list[tuple[bytes, dict[bytes, bytes]]], after: int) -> list[StoredEvent]:
    """The events after `after` in the entries of one stream in an XREAD reply."""
    events = []
    for _entry_id, fields in entries:
        first = int(fields[b"f"])
        parts = fields[b"b"].split(b"\n")
        names, data = parts[0:-1:2], parts[1::2]
        events += [StoredEvent(first + at, names[at].decode(), data[at])
                   for at in range(max(after + 1 - first, 0), len(names))]
    return events


@attrs.define(eq=False)
class _Waiter:
    after: int
    found: asyncio.Future[list[StoredEvent]]


class _Followers:
    """This process's followers that caught up with a run's log in Redis (a run executing elsewhere,
    mostly) and wait for more: one task waits for all of them with one blocking XREAD over their
    streams, on one connection, and hands each the events after its place.

    A follower that joins while that XREAD blocks interrupts it with an entry on a wake-up stream of
    this process's own, which the XREAD always includes from the last entry it saw: an entry added
    before the XREAD reaches Redis still ends it at once, so no follower waits out a block period.
    """

    def __init__(self, client: Any, wake_key: str, block: float) -> None:
        self._redis = client
        self._wake_key = wake_key
        self._wake_seen = b"0-0"
        self._block_ms = max(1, round(block * 1000))
        self._waiting: dict[str, set[_Waiter]] = {}  # events key -> its followers
        self._task: asyncio.Task[None] | None = None
        self._interrupted = False  # a wake-up entry was added since the XREAD was built

    async def wait(self, key: str, after: int, timeout: float) -> list[StoredEvent]:
        """The events after `after` in `key`'s stream as soon as there are some; [] after `timeout`."""
        waiter = _Waiter(after, asyncio.get_running_loop().create_future())
        self._waiting.setdefault(key, set()).add(waiter)
        try:
            if self._task is None or self._task.done():
                self._task = asyncio.create_task(self._serve(), name="rhetor_stream redis followers")
            elif not self._interrupted:
                self._interrupted = True
                async with self._redis.pipeline(transaction=False) as pipe:
                    pipe.xadd(self._wake_key, {"w": b""}, maxlen=1, approximate=False)
                    pipe.expire(self._wake_key, RUNNING_TTL)
                    await pipe.execute()
            return await asyncio.wait_for(asyncio.shield(waiter.found), timeout)
        except TimeoutError:
            return []  # (events handed over at that very moment are read again from `after`)
        finally:
            self._leave(key, waiter)

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _serve(self) -> None:
        while self._waiting:
            self._interrupted = False
            streams: dict[str, Any] = {key: f"0-{min(waiter.after for waiter in waiters)}"
                                       for key, waiters in self._waiting.items()}
            streams[self._wake_key] = self._wake_seen
            try:
                reply = await self._redis.xread(streams, count=_READ_COUNT, block=self._block_ms)
            except RedisError as exc:  # every follower sees it (Redis away: they retry)
                for waiters in self._waiting.values():
                    for waiter in waiters:
                        if not waiter.found.done():
                            waiter.found.set_exception(exc)
                self._waiting.clear()
                return
            for key, entries in reply or ():
                name = key.decode()
                if name == self._wake_key:
                    self._wake_seen = entries[-1][0]
                    continue
                events = _events(entries, 0)
                for waiter in list(self._waiting.get(name, ())):
                    mine = [event for event in events if event.seq > waiter.after]
                    if mine and not waiter.found.done():
                        waiter.found.set_result(mine)
                        self._leave(name, waiter)

    def _leave(self, key: str, waiter: _Waiter) -> None:
        waiters = self._waiting.get(key)
        if waiters is not None:
            waiters.discard(waiter)
            if not waiters:
                del self._waiting[key]
        if waiter.found.done() and not waiter.found.cancelled():
            waiter.found.exception()  # retrieved: a follower that left need not hear of an error


def _report_failure(flush: asyncio.Task[None]) -> None:
    """Nobody awaits the background writer, so a failure of its own must reach the log here."""
    exc = None if flush.cancelled() else flush.exception()
    if exc is not None:
        log.error("writing run events to redis failed; they stay held until the next event "
                  "tries again", exc_info=exc)


def _safe(url: str) -> str:
    """The URL without its password, for error messages."""
    scheme, sep, rest = url.partition("://")
    _credentials, at, host = rest.rpartition("@")
    return f"{scheme}{sep}{'***@' if at else ''}{host}"
