"""Event streams to HTTP clients: the one lifecycle every streaming route's response goes through,
the sessions the supervisor watches (streams and plain JSON calls), and the headers of every stream.

`EventStreamResponse` owns what every event stream has (aiohttp-sse's `EventSourceResponse` is the
model: a response that sets the headers, is prepared, and ends with `write_eof` on leaving its
`async with`): the SSE headers, `prepare`, the supervisor's watch over the stream's session, the
`active_streams` counter, a client that is gone (the end of the stream, not an error), and
`write_eof`. The route says only where the events come from: a tool run straight into a channel
(the test stream) or a run's log (`follow`, for `POST /stream`, a run's events and MCP's streams).

Why an `async with` and not a function the route hands its writer loop to: the handler's frame is
the stream's frame, and memory per open stream counts; a coroutine of its own would add one to every
open stream. For the same reason the sessions have slots and no Event or Queue of their own.
"""
from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Mapping
from contextlib import suppress
from types import TracebackType

from aiohttp import ClientConnectionResetError, web

from rhetor_stream.stream.channel import EventChannel
from rhetor_stream.stream.run import ToolRun
from rhetor_stream.stream.supervisor import Watched
from rhetor_stream.web.state import STATE

log = logging.getLogger("rhetor_stream.stream")

SSE_HEADERS = {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-cache",
    # nginx and friends buffer responses unless told not to; an event stream must not be buffered.
    "X-Accel-Buffering": "no",
}

# What a write raises once the client is gone: the end of its stream, not an error.
CLIENT_GONE = (ConnectionError, ClientConnectionResetError)


def retry_hint(request: web.Request) -> int:
    """The `retry:` of a new stream, in milliseconds: `--retry-ms` with jitter, which spreads the
    reconnects of many clients cut at the same moment (a deploy, a proxy)."""
    return round(request.app[STATE].settings.retry_ms * random.uniform(1.0, 1.25))


class EventStreamResponse(web.StreamResponse):
    """The response of one event stream, and its lifecycle from the headers to `write_eof`:

        response = EventStreamResponse(request)       # the SSE headers
        session = ...                                 # what the supervisor watches (it may write here)
        async with response.serving(session):         # watched and counted from here
            ...start the source...                    # before the headers: a client gone by then stops it too
            await response.prepare(request)
            ...write until the source ends...         # a client that goes away ends the block quietly
        return response                               # ended with write_eof when it was prepared

    Leaving the block forgets the session and uncounts the stream first, with no wait before: aiohttp
    cancels the handler of a client that left, and that bookkeeping must not depend on a wait the
    cancellation may cut short. (A subclass rather than an object beside the response: one object
    less per open stream.)
    """

    def __init__(self, request: web.Request, headers: Mapping[str, str] = SSE_HEADERS) -> None:
        super().__init__(headers=headers)
        self._sse_request = request
        self._sse_session: Watched | None = None

    def serving(self, session: Watched) -> EventStreamResponse:
        """The response, to be entered with `session` watched while the stream is open."""
        self._sse_session = session
        return self

    async def __aenter__(self) -> EventStreamResponse:
        state = self._sse_request.app[STATE]
        assert self._sse_session is not None, "enter response.serving(session)"
        state.supervisor.watch(self._sse_session)
        state.activity.active_streams += 1
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        traceback: TracebackType | None) -> bool:
        state = self._sse_request.app[STATE]
        assert self._sse_session is not None
        state.supervisor.forget(self._sse_session)
        state.activity.active_streams -= 1
        if kind is not None and not issubclass(kind, CLIENT_GONE):
            return False  # a cancellation, or a bug: it goes on
        if self.prepared:
            with suppress(*CLIENT_GONE):
                await self.write_eof()
        return True


class StreamSession:
    """A run streamed straight to one client: what the supervisor watches, drops and waits for."""

    # Slots, and no Event or future of its own: shutdown waits for the request's task (aiohttp runs
    # each request in one), which ends once the final frames are written. Memory per open stream counts.
    __slots__ = ("request", "run", "writes", "_task")

    def __init__(self, request: web.BaseRequest, run: ToolRun, channel: EventChannel) -> None:
        self.request = request
        self.run = run
        self.writes: EventChannel | None = channel
        self._task = asyncio.current_task()

    def drop(self, reason: str) -> None:
        self.run.cancel(reason)

    async def wait_closed(self) -> None:
        await self.run.wait_closed()
        if self._task is not None:
            await asyncio.wait({self._task})

    async def close(self) -> None:
        """The stream is over (finished, client gone, or dropped): stop the run and wait for it."""
        self.run.cancel("client_disconnected")
        await self.run.wait_closed()
        channel = self.writes
        assert channel is not None
        log.debug("stream %s tool=%s events=%d bytes=%d duration=%.3fs ended=%s", self.run.run_id,
                  self.run.tool.name, channel.events_written, channel.bytes_written,
                  self.run.execution_time(), self.run.end_reason)


class RunCall:
    """A tool run answered as one JSON document (`/process`): no stream, but a vanished client still
    cancels it (and the reason is the one its answer gives)."""

    __slots__ = ("request", "run")
    writes: EventChannel | None = None

    def __init__(self, request: web.BaseRequest, run: ToolRun) -> None:
        self.request = request
        self.run = run

    def drop(self, reason: str) -> None:
        self.run.cancel(reason)

    async def wait_closed(self) -> None:
        await self.run.wait_closed()


class CallSession:
    """A task answering one JSON document (an MCP tools/call without a stream): no channel, but a
    vanished client still cancels it."""

    writes: EventChannel | None = None

    def __init__(self, request: web.BaseRequest, task: asyncio.Task[object]) -> None:
        self.request = request
        self.task = task
        self.reason: str | None = None

    def drop(self, reason: str) -> None:
        if not self.task.done():
            self.reason = reason
            self.task.cancel()

    async def wait_closed(self) -> None:
        await asyncio.wait({self.task})
