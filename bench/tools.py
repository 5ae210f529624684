"""The bench's own tool, served with `--tools bench/tools.py` as a user's tool would be.

`Chunks` sends exactly the chunks of the shared workload (bench/workload.py): `count` chunks of
`size` bytes. Through `POST /api/mcp/v2/stream` it measures the run path (the run's log, its
follower, resumability) on the same work the raw floor does, so the ratio compares paths, not tools.
"""
from __future__ import annotations

from typing import Annotated, Any

from rhetor_stream.tools import Bounds, StreamCallback, mcp_tool, streaming_tool

_SAMPLE = ("Server-Sent Events keep one HTTP response open and let the server speak whenever it has "
           "something to say. ")


@mcp_tool(name="Chunks", description="Stream `count` chunks of `size` bytes (the bench's workload).",
          tags=("bench",))
@streaming_tool
async def chunks(count: Annotated[int, Bounds(ge=0, le=1_000_000)],
                 size: Annotated[int, Bounds(ge=1, le=65_536)] = 128, *,
                 _stream_callback: StreamCallback) -> dict[str, Any]:
    content = (_SAMPLE * (size // len(_SAMPLE) + 1))[:size]
    for index in range(count):
        await _stream_callback("chunk", {"content": {"content": content, "index": index,
                                                     "progress": round(100 * (index + 1) / count, 2)}})
    return {"chunks": count}
