"""GET /api/mcp/v2/stream/test: the demo and benchmark stream (not a run: see `stream_test`)."""
from __future__ import annotations

from aiohttp import web

from rhetor_stream.stream.channel import EventChannel
from rhetor_stream.stream.options import StreamOptions
from rhetor_stream.stream.run import ToolRun
from rhetor_stream.tools.builtin import STREAM_TEST_TOOL
from rhetor_stream.web.errors import ApiError
from rhetor_stream.web.state import STATE
from rhetor_stream.web.streams import EventStreamResponse, StreamSession, retry_hint

# Bounds of GET /api/mcp/v2/stream/test: (default, minimum, maximum). The defaults are a short
# human demo; the maxima allow the benchmark's 200,000-event run and hour-long idle streams, and keep
# what one unauthenticated request can ask for to 64 GB of traffic and 64 KiB a frame.
TEST_STREAM_PARAMS = {
    "count": (5, 0, 1_000_000),
    "size": (64, 1, 64 * 1024),
    "interval_ms": (500, 0, 3_600_000),
}


async def stream_test(request: web.Request) -> web.StreamResponse:
    """GET /api/mcp/v2/stream/test: a synthetic stream for `curl -N`, EventSource and the benchmark.

    A fixture for benchmarks and demos, not what users call: it is not a run (nothing is logged,
    nothing can be resumed), so its events go straight from the tool to the client's channel, the
    shortest path the stream machinery has. Its figures measure that machinery (framing, coalesced
    writes, backpressure, supervision); what a tool call costs is measured on `POST /stream`. The
    writer loop runs in this handler's own frame: every frame held by an open stream is memory.
    """
    arguments = {name: _query_int(request, name, *bounds) for name, bounds in TEST_STREAM_PARAMS.items()}
    state = request.app[STATE]
    settings = state.settings
    response = EventStreamResponse(state)
    channel = EventChannel(settings.queue_size, max_bytes=settings.queue_bytes, retry_ms=retry_hint(settings))
    run = ToolRun(STREAM_TEST_TOOL, arguments, sink=channel, options=_TEST_OPTIONS, activity=state.activity,
                  app=request.app, progress_interval=settings.progress_interval,
                  processing_tick=settings.processing_tick)
    session = StreamSession(request, run, channel)
    async with response.serving(session):
        run.start()
        try:
            await response.prepare(request)
            await channel.pump(response)
        finally:
            await session.close()
    return response


_TEST_OPTIONS = StreamOptions(include_progress=True, chunk_size="none")


def _query_int(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, "invalid_query", f"query parameter '{name}' must be an integer, got {raw!r}",
                       argument=name) from None
    if not low <= value <= high:
        raise ApiError(400, "invalid_query", f"query parameter '{name}' must be between {low} and "
                       f"{high}, got {value}", argument=name)
    return value
