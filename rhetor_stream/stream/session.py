"""A run attached to one HTTP client: what the supervisor watches and drops."""
from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from rhetor_stream.stream.channel import EventChannel
from rhetor_stream.stream.run import ToolRun

log = logging.getLogger("rhetor_stream.stream")


class StreamSession:
    """A run streamed straight to one client: what the supervisor watches, drops and waits for."""

    # Slots and a bare future (not an Event, which carries a deque): memory per open stream counts.
    __slots__ = ("request", "run", "writes", "_closed")

    def __init__(self, request: web.BaseRequest, run: ToolRun, channel: EventChannel) -> None:
        self.request = request
        self.run = run
        self.writes: EventChannel | None = channel
        self._closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def drop(self, reason: str) -> None:
        self.run.cancel(reason)

    async def wait_closed(self) -> None:
        await asyncio.shield(self._closed)

    async def close(self) -> None:
        """The stream is over (finished, client gone, or dropped): stop the run and wait for it."""
        self.run.cancel("client_disconnected")
        try:
            await self.run.wait_closed()
        finally:  # even when a second cancellation cuts the wait short: shutdown waits on this
            if not self._closed.done():
                self._closed.set_result(None)
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
