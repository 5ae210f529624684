"""Runs: tool invocations with an id, an event log, any number of subscribers, and a lifetime of
their own. The manager executes runs in this process, routes cancellation (from this process or any
other sharing the store), and feeds subscribers from the log."""
from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import attrs

from rhetor_stream.backoff import Backoff
from rhetor_stream.errors import RhetorError
from rhetor_stream.runs.recorder import RunRecorder
from rhetor_stream.runs.store import (
    FINAL_STATUSES,
    RUNNING,
    STORE_UNAVAILABLE,
    EventsExpired,
    EventStore,
    RunRecord,
    StoredEvent,
    StoreUnavailable,
)
from rhetor_stream.stream.activity import Activity
from rhetor_stream.stream.channel import Item, encode_payload
from rhetor_stream.stream.frames import error_frames
from rhetor_stream.stream.options import StreamOptions
from rhetor_stream.stream.run import ToolRun, new_run_id
from rhetor_stream.tools.registry import Tool

log = logging.getLogger("rhetor_stream.runs")

_RETRY_FIRST, _RETRY_LAST = 0.1, 2.0  # pauses of a subscriber waiting for the event store to return


def id_prefix(run_id: str) -> str:
    """Event ids read `<prefix>-<n>`: the prefix ties an id to its run, so a foreign id is refused."""
    return run_id[:8]


class Resume(enum.Enum):
    """Where a resuming client stands: the run is unknown (or forgotten), the client already has all of
    a finished run, it names an event the run has not produced, or there is something to follow."""

    UNKNOWN = "unknown"
    COMPLETE = "complete"
    BEYOND = "beyond"
    FOLLOW = "follow"


@attrs.define(eq=False)
class LocalRun:
    """A run executing in this process."""

    tool_run: ToolRun
    recorder: RunRecorder
    # The manager's table of the runs executing here, which the run leaves when it ends.
    table: dict[str, LocalRun]
    # None: detached (POST /runs), 0: cancel when the last subscriber leaves, >0: wait that long.
    grace: float | None
    subscribers: int = 0
    grace_timer: asyncio.TimerHandle | None = None
    # What to do once the run has ended, e.g. give back the capacity and key-limit places it holds.
    # A tuple: most runs have none or one, and the empty tuple costs nothing per open run.
    on_end: tuple[Callable[[], object], ...] = ()

    @property
    def run_id(self) -> str:
        return self.tool_run.run_id

    def when_done(self, callback: Callable[[], object]) -> None:
        """Call `callback` once the run has ended (its final events are written)."""
        self.on_end += (callback,)

    def followed_here(self) -> bool:
        return self.subscribers > 0

    def ended(self) -> None:
        """The run has ended and its final events are logged: give back what it held. (The tool run's
        `ended` hook is this bound method rather than a partial of the manager's: memory per open run.)"""
        if self.grace_timer is not None:
            self.grace_timer.cancel()
        self.table.pop(self.run_id, None)
        for callback in self.on_end:
            callback()
        log.debug("run %s tool=%s events=%d ended=%s", self.run_id, self.tool_run.tool.name,
                  self.recorder.seq, self.tool_run.end_reason)


class RunManager:
    def __init__(self, store: EventStore, *, activity: Activity, app: Any, queue_size: int,
                 progress_interval: float, processing_tick: float) -> None:
        self.store = store
        self._activity = activity
        self._app = app
        self._queue_size = queue_size
        self._progress_interval = progress_interval
        self._processing_tick = processing_tick
        self._local: dict[str, LocalRun] = {}

    async def start(self) -> None:
        await self.store.start(on_cancel=self.cancel_local, on_overflow=self._overflowed)

    def _overflowed(self, run_id: str) -> None:
        """The store can no longer keep the run's events (it is away and the buffer is full)."""
        self.cancel_local(run_id, STORE_UNAVAILABLE)

    async def close(self) -> None:
        await self.store.close()

    def local(self, run_id: str) -> LocalRun | None:
        return self._local.get(run_id)

    async def create(self, tool: Tool, arguments: dict[str, Any], options: StreamOptions, *,
                     grace: float | None, run_id: str | None = None) -> LocalRun:
        """Start a run. A caller that must find it again from what its client sends names it with
        `run_id` (the MCP transport derives it from session and request id) and makes sure the id is
        unused; otherwise the run gets a fresh random id."""
        run_id = run_id or new_run_id()
        record = RunRecord(run_id, tool.name, RUNNING, time.time())
        try:
            await self.store.create(record)
        except asyncio.CancelledError:
            # The client left while the record was being written (aiohttp cancels its handler), and
            # the write may have reached the store. A record left saying "running" would be followed
            # by nobody for a day: it is written again to be sure, and the run starts cancelled,
            # which ends its log with `error` and `disconnect` like any other.
            written = asyncio.ensure_future(self.store.create(record))
            written.add_done_callback(lambda task: self._start_cancelled(task, run_id, tool, arguments, options))
            raise
        return self._start(run_id, tool, arguments, options, grace)

    def _start_cancelled(self, written: asyncio.Future[None], run_id: str, tool: Tool,
                         arguments: dict[str, Any], options: StreamOptions) -> None:
        if not written.cancelled() and written.exception() is None:
            self._start(run_id, tool, arguments, options, 0).tool_run.cancel("client_disconnected")

    def _start(self, run_id: str, tool: Tool, arguments: dict[str, Any], options: StreamOptions,
               grace: float | None) -> LocalRun:
        recorder = RunRecorder(run_id, self.store, window=self._queue_size)
        tool_run = ToolRun(tool, arguments, sink=recorder, options=options, activity=self._activity,
                           app=self._app, progress_interval=self._progress_interval,
                           processing_tick=self._processing_tick, run_id=run_id)
        run = LocalRun(tool_run, recorder, self._local, grace)
        if not self.store.shared:  # in a shared store, other processes' subscribers may be reading
            tool_run.listened = run.followed_here
        self._local[run_id] = run
        tool_run.ended = run.ended
        tool_run.start()
        return run

    async def record_ending_lost(self, run_id: str) -> RunRecord | None:
        """The run's record, for its status. A run marked running whose process died (its lease
        lapsed) is ended here first, with `run_lost`: whoever asks about it next finds it ended."""
        record = await self.store.get(run_id)
        if record is None or record.status != RUNNING or run_id in self._local:
            return record
        lost = RhetorError(f"the server process running {record.tool_name} stopped without ending the run",
                           code="run_lost")
        final = [(event, encode_payload(data))
                 for event, data in error_frames(lost, reason=lost.code, tool_name=record.tool_name)]
        if await self.store.reap(record, "error", final):
            return await self.store.get(run_id)
        return record

    async def last_seq(self, run_id: str) -> int:
        """The number of the run's last event so far (0 when it has none yet)."""
        run = self._local.get(run_id)
        return run.recorder.seq if run is not None else await self.store.last_seq(run_id)

    async def resume_point(self, run_id: str, after: int) -> Resume:
        """What a client asking for the events of `run_id` after number `after` should get."""
        record = await self.record_ending_lost(run_id)
        if record is None:
            return Resume.UNKNOWN
        if after:
            last = await self.last_seq(run_id)
            if after >= last and record.status in FINAL_STATUSES:
                # The client has the whole run (a browser reconnects after `disconnect` too): following
                # would only send heartbeats until the retention ends.
                return Resume.COMPLETE
            if after > last:
                return Resume.BEYOND
        return Resume.FOLLOW

    def cancel_local(self, run_id: str, reason: str = "cancelled") -> bool:
        run = self._local.get(run_id)
        if run is None:
            return False
        run.tool_run.cancel(reason)
        return True

    async def cancel(self, run_id: str) -> None:
        """Cancel a run wherever it executes."""
        if not self.cancel_local(run_id):
            await self.store.request_cancel(run_id)

    def subscribed(self, run: LocalRun | None) -> None:
        if run is not None:
            run.subscribers += 1
            if run.grace_timer is not None:
                run.grace_timer.cancel()
                run.grace_timer = None

    def unsubscribed(self, run: LocalRun | None) -> None:
        """The last subscriber of a run that lives for its client left: cancel now or after the grace."""
        if run is None:
            return
        run.subscribers -= 1
        if run.subscribers or run.grace is None or run.tool_run.end_reason != "running":
            return
        if run.grace == 0:
            run.tool_run.cancel("client_disconnected")
        else:
            loop = asyncio.get_running_loop()
            run.grace_timer = loop.call_later(run.grace, run.tool_run.cancel, "client_disconnected")

    async def shutdown(self, timeout: float) -> None:
        """Cancel the runs of this process; their logs end with `server_shutdown`."""
        runs = list(self._local.values())
        for run in runs:
            run.tool_run.cancel("server_shutdown")
        if runs:
            await asyncio.wait([asyncio.ensure_future(run.tool_run.wait_closed()) for run in runs], timeout=timeout)

    async def forward(self, run_id: str, after: int, follower: LogFollower, *,
                      recorder: RunRecorder | None = None, poll: float = 5.0) -> None:
        """Hand the log after `after` to `follower`, then follow it live, until the run's `disconnect`.

        With `recorder` (the run's own, in this process) the follower holds the run back: the run may
        get at most a window ahead of what the follower has taken. The store being away does not
        end the following: the follower keeps its place and it tries again with growing pauses (the
        follower's `idle` keeps its connection alive meanwhile), and the run goes on for it; only the
        run itself ends it (`disconnect`), or its log being gone: expired, or past its bound for
        this follower (then `events_expired` frames are handed over as if logged).
        """
        key = object()
        if recorder is not None:
            recorder.read_up_to(key, after)
        backoff: Backoff | None = None  # made when the store is away: this frame lasts as long as the stream
        try:
            while True:
                try:
                    events = await self.store.read(run_id, after, wait=poll)
                    if not events and run_id not in self._local and await self.record_ending_lost(run_id) is None:
                        return  # the run expired while we waited
                except EventsExpired as exc:
                    await follower.deliver(as_logged(after, error_frames(exc, reason=exc.code)))
                    return
                except StoreUnavailable as exc:
                    log.debug("subscriber of run %s at #%d waits for the event store: %s", run_id, after, exc)
                    await follower.idle()
                    backoff = backoff or Backoff(_RETRY_FIRST, _RETRY_LAST)
                    await backoff.wait()
                    continue
                backoff = None
                if not events:
                    await follower.idle()
                    continue
                await follower.deliver(events)
                after = events[-1].seq
                if recorder is not None:
                    recorder.read_up_to(key, after)
                # A run's last event is its `disconnect`, so only a batch's last can be one.
                if events[-1].event == "disconnect":
                    return
                del events  # written: a run that goes quiet now keeps none of it alive in this frame
        finally:
            if recorder is not None:
                recorder.release(key)


class LogFollower(Protocol):
    """Who `RunManager.forward` hands a run's events to: a client's stream, an MCP answer."""

    async def deliver(self, events: Sequence[StoredEvent]) -> None:
        """The next events of the log, in order; returning asks for more (that is the backpressure)."""

    async def idle(self) -> None:
        """Nothing new came for a while (or the store is away): a chance to keep a connection alive."""


def as_logged(after: int, items: Sequence[Item]) -> list[StoredEvent]:
    """Events that end a following without being in the log, numbered as if they were, after `after`."""
    return [StoredEvent(after + index, event, encode_payload(data)) for index, (event, data) in enumerate(items, 1)]
