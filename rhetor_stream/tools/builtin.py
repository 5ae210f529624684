"""Built-in diagnostic tools, always registered: small, honest, and handy for demos and tests."""
from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from typing import Annotated, Any

from rhetor_stream.chunking import PIECE, Chunker, pieces
from rhetor_stream.tools.registry import Bounds, StreamCallback, ToolContext, build_tool, mcp_tool, streaming_tool
from rhetor_stream.wording import plural

_TOKENS = re.compile(r"\S+\s*|\s+")
# The text may be as long as the body limit, and other requests must not wait for all of it: the
# chunker gets at most PIECE characters at a time, and the event loop gets a turn after every
# _PAUSE_EVERY characters fed (a delta counts _DELTA_COST more, so many tiny ones add up too). A
# request needs several loop turns, so each turn must be short: about a millisecond.
_PAUSE_EVERY = 512
_DELTA_COST = 16
_SAMPLE = ("Server-Sent Events keep one HTTP response open and let the server speak whenever it has "
           "something to say. ")


@mcp_tool(name="Echo", description="Return the text it is given.", tags=("diagnostic",))
async def echo(text: str) -> dict[str, Any]:
    return {"text": text}


@mcp_tool(name="Wait", description="Sleep for the given seconds, reporting real progress; "
          "the long-running, cancellable tool for demos and tests.", tags=("diagnostic",))
async def wait(seconds: Annotated[float, Bounds(ge=0, le=86_400)], *, _context: ToolContext) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    started = loop.time()
    deadline = started + seconds
    while (remaining := deadline - loop.time()) > 0:
        await asyncio.sleep(min(remaining, 1.0))
        done = min(loop.time() - started, seconds)
        await _context.report_progress(round(100 * done / seconds, 1),
                                       f"waited {done:.1f} of {seconds:g} s")
    return {"waited": seconds}


@mcp_tool(name="StreamText", description="Stream the given text back in chunks cut by "
          "stream_options.chunk_size, as an LLM answer would arrive.", tags=("diagnostic", "streaming"))
@streaming_tool
async def stream_text(text: str, delay_ms: Annotated[int, Bounds(ge=0, le=10_000)] = 50, *,
                      _stream_callback: StreamCallback, _context: ToolContext) -> dict[str, Any]:
    chunker = Chunker(_context.chunk_size)
    total = len(text) or 1
    delivered = 0  # characters sent so far: a chunk's progress is the share of the text the client has
    sent = 0

    async def send(chunks: list[str]) -> None:
        nonlocal sent, delivered
        for chunk in chunks:
            if sent and delay_ms:
                await asyncio.sleep(delay_ms / 1000)
            sent += 1
            delivered += len(chunk)
            await _stream_callback("chunk", {"content": {"content": chunk, "index": sent - 1,
                                                         "progress": round(100 * delivered / total, 1)}})

    work = 0
    for delta in _deltas(text):
        await send(chunker.feed(delta))
        work += len(delta) + _DELTA_COST
        if work >= _PAUSE_EVERY:
            work = 0
            await asyncio.sleep(0)
    await send(chunker.flush())
    return {"text": text, "chunks": sent}


def _deltas(text: str) -> Iterator[str]:
    """The text as a model would stream it: word by word, and a very long word in pieces."""
    for match in _TOKENS.finditer(text):
        token = match.group()
        if len(token) <= PIECE:
            yield token
        else:
            yield from pieces(token)


async def _stream_test(count: int, size: int, interval_ms: int, *,
                       _stream_callback: StreamCallback) -> dict[str, Any]:
    """The synthetic workload of GET /api/mcp/v2/stream/test (and of the benchmark)."""
    await _stream_callback("progress", {"stage": "streaming", "percentage": 0,
                                        "message": f"Streaming {plural(count, 'chunk')} of {plural(size, 'byte')}"})
    content = (_SAMPLE * (size // len(_SAMPLE) + 1))[:size]
    interval = interval_ms / 1000
    for index in range(count):
        if interval and index:
            await asyncio.sleep(interval)
        await _stream_callback("chunk", {"content": {"content": content, "index": index,
                                                     "progress": round(100 * (index + 1) / count, 2)}})
    return {"chunks": count}


STREAM_TEST_TOOL = build_tool(streaming_tool(_stream_test), name="stream_test",
                              description="Synthetic test stream (not in the public registry).")
