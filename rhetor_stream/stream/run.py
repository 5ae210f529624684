"""One tool invocation driven to its end: the producer side of a stream.

The event order is a contract clients rely on: `connected`; any `progress`, `chunk` and `message`;
exactly one of `complete` or `error`; then `disconnect`. Every way a run can end (a result, a tool
error, a crash, a server shutdown) goes through `execute`, which is what keeps that promise. Only a
client that has gone away gets no final frames: there is nobody left to read them.
"""
from __future__ import annotations

import asyncio
import logging
import os
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import orjson

from rhetor_stream.errors import RhetorError
from rhetor_stream.stream.activity import Activity
from rhetor_stream.stream.channel import EventSink, Item
from rhetor_stream.stream.frames import ending, error_frames, failure, timestamp
from rhetor_stream.stream.options import StreamOptions
from rhetor_stream.stream.progress import ProgressThrottle
from rhetor_stream.tasks import TIMER_CONTEXT
from rhetor_stream.tools.registry import Tool, ToolContext, ToolError

log = logging.getLogger("rhetor_stream.run")

STREAM_EVENT_TYPES = frozenset({"progress", "chunk", "message"})


RUN_ID_SHAPE = "32 lowercase hexadecimal digits"
_RUN_ID = re.compile("[0-9a-f]{32}")


def new_run_id() -> str:
    """A fresh run id, RUN_ID_SHAPE: 128 random bits (from the OS, as `uuid4`'s are; without the
    UUID object, whose making costs several times the bits, before every stream's first event)."""
    return os.urandom(16).hex()


def is_run_id(text: str) -> bool:
    """True for text shaped like `new_run_id()`: ids from URLs end up in store keys."""
    return _RUN_ID.fullmatch(text) is not None


class ToolRun:
    """Runs one tool and turns everything that happens into events on a sink (a client channel or a run log)."""

    __slots__ = ("tool", "_arguments", "sink", "options", "run_id", "end_reason", "listened", "ended", "_activity",
                 "_app", "_progress_interval", "_processing_tick", "_cancel_reason", "_task", "_tick", "_throttle",
                 "_reported", "_said_since_tick", "_loop", "_started")

    def __init__(self, tool: Tool, arguments: Mapping[str, Any], *, sink: EventSink,
                 options: StreamOptions, activity: Activity, app: Any = None,
                 progress_interval: float = 0.1, processing_tick: float = 1.0,
                 run_id: str | None = None) -> None:
        self.tool = tool
        self._arguments: Mapping[str, Any] | None = arguments  # until the tool has them
        self.sink = sink
        self.options = options
        self.run_id = run_id or new_run_id()
        self.end_reason = "running"
        # Whether anybody follows the events now: a channel always has its reader, the owner of a
        # run's log knows its subscribers.
        self.listened: Callable[[], bool] = _always
        # Called once the task is over and the final events are on the sink (the owner of a run's log
        # gives back what the run held); a hook rather than a second done callback: memory per open run.
        self.ended: Callable[[], object] = _no_one_to_tell
        self._activity = activity
        self._app = app
        self._progress_interval = progress_interval
        self._processing_tick = processing_tick
        self._cancel_reason: str | None = None
        self._task: asyncio.Task[None] | None = None
        self._tick: asyncio.TimerHandle | None = None
        self._throttle: ProgressThrottle | None = None
        self._reported: float | None = None
        self._said_since_tick = False  # the tool reported progress itself since the last tick
        self._loop = asyncio.get_running_loop()
        self._started = self._loop.time()

    def start(self) -> asyncio.Task[None]:
        """Log `connected` and start the tool's task.

        `connected` is logged here, before the task's first step: whoever follows the run finds it at
        once and writes it without waiting a loop turn for the task (the time to first event of every
        stream), and a run cancelled before its first step still begins with it. A fresh sink always
        takes one event.
        """
        self.sink.offer("connected", {"run_id": self.run_id, "tool_name": self.tool.name, "timestamp": timestamp(),
                                      "message": f"Connected; running {self.tool.name}"})
        self._task = asyncio.create_task(self.execute())
        self._task.add_done_callback(self._ensure_ended)
        return self._task

    def cancel(self, reason: str) -> None:
        """Stop the tool; `reason` decides what (if anything) the client is told."""
        if self._task is not None and not self._task.done():
            self._cancel_reason = self._cancel_reason or reason
            self._task.cancel()

    async def wait_closed(self) -> None:
        """Wait for the task to end without inheriting its cancellation."""
        if self._task is not None:
            await asyncio.wait({self._task})

    async def execute(self) -> None:
        tool = self.tool
        sink = self.sink
        throttle = ProgressThrottle(sink, interval=self._progress_interval, started=self._started)
        self._throttle = throttle
        self._activity.active_tools += 1
        try:
            automatic = self.options.include_progress and not tool.streaming
            if automatic:
                await throttle.report("starting", 0, f"Starting {tool.name}")
                # Half a tick out of phase with the start: a tool that reports on whole ticks (Wait,
                # every second) reports just before each tick's check, never just after it.
                self._tick = self._loop.call_later(1.5 * self._processing_tick, self._processing,
                                                   context=TIMER_CONTEXT)
            context = ToolContext(run_id=self.run_id, tool_name=tool.name, chunk_size=self.options.chunk_size,
                                  app=self._app, report=self._report) if tool.wants_context else None
            assert self._arguments is not None
            invoked = tool.invoke(self._arguments, context=context, stream_callback=self._emit)
            # The tool holds what it needs of them now; an open run keeps nothing it no longer uses.
            self._arguments = None
            result = await invoked
            result_json_problem = _json_problem(result)
            if result_json_problem:
                raise ToolError(f"{tool.name} returned a result that is not JSON: {result_json_problem}",
                                code="invalid_result")
            self._stop_ticking()
            if automatic:
                await throttle.report("finalizing", 100, f"{tool.name} finished", final=True)
            self._complete(result)
        except asyncio.CancelledError:
            # Final frames even for a client that left: a run's log has other readers, and a
            # channel whose client is gone simply never writes them.
            self._stopped()
            raise
        except RhetorError as exc:  # a ToolError, mostly: said on purpose, so said as it is
            self._end(error_frames(exc, tool_name=tool.name), reason="error")
        except Exception as exc:
            log.exception("tool %s (run %s) raised", tool.name, self.run_id)
            self._fail(f"{tool.name} failed: {type(exc).__name__}: {exc}", "tool_error")
        finally:
            self._stop_ticking()
            throttle.close()
            self._activity.active_tools -= 1

    def _complete(self, result: Any) -> None:
        """The run's `complete`. (A method of its own: the deep expression would grow the frame of
        `execute`, which lives as long as the run.)"""
        elapsed = self.execution_time()
        # `message` is for people: the original Rhetor's clients print it.
        self._end(ending("complete", {"result": result, "execution_time": elapsed, "timestamp": timestamp(),
                                      "message": f"{self.tool.name} completed in {elapsed:.2f} s"}, "complete"),
                  reason="complete")

    def execution_time(self) -> float:
        return round(self._loop.time() - self._started, 4)

    def _emit(self, event_type: str, data: Mapping[str, Any]) -> Awaitable[None]:
        """The `_stream_callback` handed to streaming tools (a plain function: it is per-event hot)."""
        if event_type not in STREAM_EVENT_TYPES:
            raise ToolError(f"{self.tool.name} sent an event of unknown type {event_type!r} "
                            f"(use progress, chunk or message)", code="invalid_event")
        if type(data) is not dict and not isinstance(data, Mapping):
            raise ToolError(f"{self.tool.name} sent {event_type} data that is not an object",
                            code="invalid_event")
        if event_type != "progress":
            return self.sink.send(event_type, data)
        if not self.options.include_progress or self._throttle is None:
            return _nothing()
        fields = dict(data)
        percentage = fields.pop("percentage", None)
        return self._throttle.report(str(fields.pop("stage", "processing")), percentage,
                                     str(fields.pop("message", "")), final=percentage == 100, **fields)

    async def _report(self, percentage: float | None, message: str) -> None:
        """`_context.report_progress` for plain tools; while nobody follows the run only the
        percentage is kept, and the next processing tick after somebody arrives carries it."""
        self._reported = percentage
        if self.options.include_progress and self._throttle is not None and self.listened():
            self._said_since_tick = True
            await self._throttle.report("processing", percentage, message)

    def _processing(self) -> None:
        """The once-a-second heartbeat of a plain tool: honest elapsed time, no invented percentage.

        Skipped while nobody follows the run: in its log it would be an event per second that nobody
        reads (3,600 for an hour-long Wait, pushing out the `connected` event of longer ones), and
        thousands of idle runs would keep a core busy storing them. Skipped too when the tool itself
        reported progress since the last tick: a tool that reports every second (Wait) otherwise sent
        two progress events a second, its own and a "still running" one just before or after it.
        The ticks come at 1.5, 2.5, 3.5 ... ticks after the start: at whole ticks, the first one came
        a moment before such a tool's first report, which is one redundant event in every run's log.
        """
        throttle = self._throttle
        if throttle is None:
            return
        if self._said_since_tick:
            self._said_since_tick = False
        elif self.listened():
            throttle.post("processing", self._reported, f"{self.tool.name} is running")
        self._tick = self._loop.call_later(self._processing_tick, self._processing, context=TIMER_CONTEXT)

    def _stop_ticking(self) -> None:
        if self._tick is not None:
            self._tick.cancel()
            self._tick = None

    def _ensure_ended(self, task: asyncio.Task[None]) -> None:
        """A task cancelled before its first step never ran `execute`, so nothing ended the stream."""
        if self.end_reason == "running":
            self._stopped()
        self.ended()

    def _stopped(self) -> None:
        reason = self._cancel_reason or "cancelled"
        self._fail(f"{self.tool.name} was stopped: {reason.replace('_', ' ')}", reason, reason=reason)

    def _fail(self, message: str, code: str, *, reason: str = "error") -> None:
        self._end(failure(message, code, reason, tool_name=self.tool.name), reason=reason)

    def _end(self, frames: tuple[Item, Item], *, reason: str) -> None:
        self.end_reason = reason
        self.sink.finish(*frames, reason=reason)


def _always() -> bool:
    return True


def _no_one_to_tell() -> None:
    """What a run that nobody owns calls when it has ended."""


async def _nothing() -> None:
    """What a dropped progress report awaits."""

def _json_problem(value: Any) -> str | None:
    try:
        orjson.dumps(value)
    except TypeError as exc:
        return str(exc)
    return None
