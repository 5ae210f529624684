"""The shared workload of every server in the bench: GET /api/mcp/v2/stream/test.

Each peer produces the same events with the same payloads (connected, one progress, `count` chunks
of about `size` bytes, complete, disconnect), so the figures compare the servers, not the work.
"""
from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

PATH = "/api/mcp/v2/stream/test"
RETRY_MS = 3000
_SAMPLE = ("Server-Sent Events keep one HTTP response open and let the server speak whenever it has "
           "something to say. ")


def parse_query(query: Mapping[str, str]) -> tuple[int, int, float]:
    """count, size and interval (seconds) from the query string, with the demo defaults."""
    return int(query.get("count", 5)), int(query.get("size", 64)), int(query.get("interval_ms", 500)) / 1000


def events(count: int, size: int) -> Iterator[tuple[str, dict[str, Any]]]:
    """The events of one stream, in order; the caller sleeps `interval` between chunks."""
    started = time.monotonic()
    yield "connected", {"run_id": uuid.uuid4().hex, "tool_name": "stream_test",
                        "timestamp": time.time(), "message": "Connected"}
    yield "progress", {"stage": "streaming", "percentage": 0, "message": f"Streaming {count} chunks",
                       "elapsed": 0.0}
    content = (_SAMPLE * (size // len(_SAMPLE) + 1))[:size]
    for index in range(count):
        yield "chunk", {"content": {"content": content, "index": index,
                                    "progress": round(100 * (index + 1) / count, 2)}}
    elapsed = time.monotonic() - started
    yield "complete", {"result": {"chunks": count}, "execution_time": elapsed, "timestamp": time.time(),
                       "message": f"stream_test completed in {elapsed:.2f} s"}
    yield "disconnect", {"message": "Stream complete", "timestamp": time.time()}


def announce(port: int) -> None:
    print(f"Serving on http://127.0.0.1:{port}", flush=True)
