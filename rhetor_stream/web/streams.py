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

A run's client (`RunFollower`): each batch the log hands over becomes one write to its response.
Why there is no queue between the log and the socket: the run's log already is one. The follower
takes what the log has after its place, frames it and writes it, and only then asks for more; while
the client is slow that write waits (aiohttp drains the transport), the follower's place stays behind
and the run's recorder holds the tool back (its window). One task, the request's own, does all of
it: no forwarder task, no channel, nothing per event but its frame.

Why `RunFollower.drop` cancels the request's task: the follower may be waiting for the log (a quiet
run) or for the socket, and the supervisor must be able to end it either way. The cancellation is
its own (`uncancel`), so it ends the stream cleanly: without a final event, which makes an
EventSource reconnect (after a shutdown, to another process). A cancellation from aiohttp is not
ours and goes on.
"""
from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from types import TracebackType

from aiohttp import ClientConnectionResetError, web
from aiohttp.abc import AbstractStreamWriter

from rhetor_stream.runs.store import StoredEvent
from rhetor_stream.settings import Settings
from rhetor_stream.sse.encoding import HEARTBEAT, encode_numbered
from rhetor_stream.sse.ids import id_head
from rhetor_stream.stream.channel import EventChannel, coalesced
from rhetor_stream.stream.run import ToolRun
from rhetor_stream.stream.supervisor import Watched
from rhetor_stream.tasks import TIMER_CONTEXT
from rhetor_stream.web.state import AppState

log = logging.getLogger("rhetor_stream.stream")

SSE_HEADERS = {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-cache",
    # nginx and friends buffer responses unless told not to; an event stream must not be buffered.
    "X-Accel-Buffering": "no",
}

# What a write raises once the client is gone: the end of its stream, not an error.
CLIENT_GONE = (ConnectionError, ClientConnectionResetError)


def retry_hint(settings: Settings) -> int:
    """The `retry:` of a new stream, in milliseconds: `--retry-ms` with jitter, which spreads the
    reconnects of many clients cut at the same moment (a deploy, a proxy)."""
    return round(settings.retry_ms * random.uniform(1.0, 1.25))


class EventStreamResponse(web.StreamResponse):
    """The response of one event stream, and its lifecycle from the headers to `write_eof`:

        response = EventStreamResponse(state)         # the SSE headers
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

    # The headers go out with the first frame, in one write (aiohttp's `Response` holds them back the
    # same way), rather than in a send of their own just before it; see `prepare`.
    _send_headers_immediately = False

    def __init__(self, state: AppState, headers: Mapping[str, str] = SSE_HEADERS) -> None:
        super().__init__(headers=headers)
        self._sse_state = state
        self._sse_session: Watched | None = None

    def serving(self, session: Watched) -> EventStreamResponse:
        """The response, to be entered with `session` watched while the stream is open."""
        self._sse_session = session
        return self

    async def prepare(self, request: web.BaseRequest) -> AbstractStreamWriter | None:
        """Prepared: the headers wait for the first frame written in this loop turn, and go out alone
        on the next if there is none (a quiet run): a client learns at once that its stream is open."""
        first = not self.prepared
        writer = await super().prepare(request)
        if first and writer is not None:
            asyncio.get_running_loop().call_soon(_send_headers, writer, context=TIMER_CONTEXT)
        return writer

    async def __aenter__(self) -> EventStreamResponse:
        state = self._sse_state
        assert self._sse_session is not None, "enter response.serving(session)"
        state.supervisor.watch(self._sse_session)
        state.activity.active_streams += 1
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        traceback: TracebackType | None) -> bool:
        state = self._sse_state
        assert self._sse_session is not None
        state.supervisor.forget(self._sse_session)
        state.activity.active_streams -= 1
        if kind is not None and not issubclass(kind, CLIENT_GONE):
            return False  # a cancellation, or a bug: it goes on
        if self.prepared:
            with suppress(*CLIENT_GONE):
                await self.write_eof()
        return True


def _send_headers(writer: AbstractStreamWriter) -> None:
    with suppress(*CLIENT_GONE):  # nobody to answer any more: the stream's own write finds out
        writer.send_headers()


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
    """A tool run answered as one JSON document (`/process`, an MCP tools/call without a stream): no
    stream, but a vanished client still cancels it (and the reason is the one its answer gives)."""

    __slots__ = ("request", "run")
    writes: EventChannel | None = None

    def __init__(self, request: web.BaseRequest, run: ToolRun) -> None:
        self.request = request
        self.run = run

    def drop(self, reason: str) -> None:
        self.run.cancel(reason)

    async def wait_closed(self) -> None:
        await self.run.wait_closed()


# The bytes of one event of a run's log on the wire.
Frames = Callable[[StoredEvent], bytes]


class EventFrames:
    """Our own frames: ids `<prefix>-N` with the log's numbers, and the `retry` hint in the first."""

    __slots__ = ("_head", "_retry_ms")

    def __init__(self, id_prefix: str, retry_ms: int | None) -> None:
        self._head = id_head(id_prefix)
        self._retry_ms = retry_ms

    def __call__(self, event: StoredEvent) -> bytes:
        retry, self._retry_ms = self._retry_ms, None
        return encode_numbered(self._head, event.seq, event.event, event.data, retry)


class RunFollower:
    """One client's stream of a run: what `RunManager.forward` feeds and the supervisor watches."""

    # Slots, and no future or Event of its own (shutdown waits for the request's task, like
    # StreamSession's): memory per open stream is a product figure.
    __slots__ = ("request", "local", "events_written", "bytes_written", "write_started", "last_write", "_frames",
                 "_max_bytes", "_response", "_ping", "_task", "_dropped", "_ended", "last_id")

    def __init__(self, request: web.BaseRequest, response: web.StreamResponse, frames: Frames, *,
                 max_bytes: int, local: bool) -> None:
        self.request = request
        self.local = local  # the run executes in this process: its end reaches this follower
        self._response = response
        self._frames = frames
        self._max_bytes = max_bytes
        self.events_written = 0
        self.bytes_written = 0
        self.last_id = 0  # the number of the last event written
        self.write_started: float | None = None
        self.last_write = asyncio.get_running_loop().time()
        self._ping = False
        self._task = asyncio.current_task()
        self._dropped: str | None = None
        self._ended = False

    @property
    def writes(self) -> RunFollower:
        """What the supervisor reads its write clock from and asks for heartbeats."""
        return self

    @property
    def dropped(self) -> str | None:
        return self._dropped

    async def deliver(self, events: Sequence[StoredEvent]) -> None:
        frames = list(map(self._frames, events))
        payloads = list(coalesced(frames, self._max_bytes))
        last = payloads.pop()
        for payload in payloads:
            await self._write(payload)
        # A run's last event is its `disconnect`: the write that carries it ends the response too,
        # rather than a send of its own for the end of the chunked body just after it.
        await self._write(last, end=events[-1].event == "disconnect")
        self.events_written += len(frames)
        self.last_id = events[-1].seq

    async def idle(self) -> None:
        if self._ping:
            self._ping = False
            await self._write(HEARTBEAT)

    def heartbeat(self) -> None:
        """A ping is due: written the next time the log has nothing new (`idle`)."""
        self._ping = True

    def drop(self, reason: str) -> None:
        if reason == "server_shutdown" and self.local:
            return  # the run itself is cancelled; its final events reach this subscriber
        if self._dropped is None and self._task is not None and not self._ended:
            self._dropped = reason
            self._task.cancel()

    def ended(self) -> None:
        """The stream is over: nothing is left to drop."""
        self._ended = True

    async def wait_closed(self) -> None:
        """The request's task has ended: its final frames and the end of its response are written."""
        if self._task is not None:
            await asyncio.wait({self._task})

    async def _write(self, payload: bytes, *, end: bool = False) -> None:
        loop = asyncio.get_running_loop()
        self.write_started = loop.time()
        await (self._response.write_eof(payload) if end else self._response.write(payload))
        self.last_write = loop.time()
        self.write_started = None
        self.bytes_written += len(payload)
