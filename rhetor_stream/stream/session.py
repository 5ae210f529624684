"""A run attached to one HTTP client: what the supervisor watches and drops."""
from __future__ import annotations

import asyncio
import logging

from aiohttp import ClientConnectionResetError, web

from rhetor_stream.stream.channel import EventChannel
from rhetor_stream.stream.run import ToolRun

log = logging.getLogger("rhetor_stream.stream")


class StreamSession:
    """Pumps a run's events into a prepared `StreamResponse` until the run or the client ends."""

    def __init__(self, request: web.BaseRequest, run: ToolRun, channel: EventChannel) -> None:
        self.request = request
        self.run = run
        self.channel: EventChannel | None = channel
        self._closed = asyncio.Event()

    def drop(self, reason: str) -> None:
        self.run.cancel(reason)

    async def wait_closed(self) -> None:
        await self._closed.wait()

    async def serve(self, response: web.StreamResponse) -> None:
        channel = self.channel
        assert channel is not None
        loop = asyncio.get_running_loop()
        started = loop.time()
        self.run.start()
        try:
            await channel.pump(response)
        except (ConnectionError, ClientConnectionResetError):
            self.run.cancel("client_disconnected")
        finally:
            # Also reached when aiohttp cancels the handler (handler_cancellation=True).
            self.run.cancel("client_disconnected")
            await self.run.wait_closed()
            self._closed.set()
            log.debug("stream %s tool=%s events=%d bytes=%d duration=%.3fs ended=%s",
                      self.run.run_id, self.run.tool.name, channel.events_written,
                      channel.bytes_written, loop.time() - started, self.run.end_reason)


class CallSession:
    """A plain JSON tool call (`/process`): no channel, but a vanished client still cancels it."""

    channel: EventChannel | None = None

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
