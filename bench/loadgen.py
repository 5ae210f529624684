"""The load generator: its own process, pinned to its own core, speaking raw HTTP/1.1 on sockets.

It counts `event: chunk` lines in the byte stream (keeping a tail so a marker cut between two reads
still counts) rather than parsing SSE: parsing would make the client, not the server, the
bottleneck. Each server writes whole frames per HTTP chunk, so chunk-size lines never cut a marker.
Results are one JSON object on stdout.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import sys
import time
from typing import Any

# Servers end lines with LF or CRLF (aiohttp-sse's default); both spellings are counted.
CHUNKS = (b"event: chunk\n", b"event: chunk\r")
END = b"event: disconnect"


def pin(core: int) -> None:
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > core:
        os.sched_setaffinity(0, {core})


def raise_fd_limit() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class StreamReader(asyncio.Protocol):
    """Reads one SSE response: counts chunks, notes the first frame and the end."""

    def __init__(self, request: bytes, started: float, *, wait_for: bytes = END,
                 markers: tuple[bytes, ...] = CHUNKS) -> None:
        self.request = request
        self.started = started
        self.wait_for = wait_for
        self.markers = markers
        self.chunks = 0
        self.first_frame: float | None = None
        self.tail = b""
        self.head = b""
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport  # uvloop's transports are not asyncio.Transport subclasses
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        if self.first_frame is None:
            self.head += data
            header_end = self.head.find(b"\r\n\r\n")
            body = header_end + 4
            if header_end >= 0 and (self.head.find(b"\n\n", body) >= 0 or self.head.find(b"\r\n\r\n", body) >= 0):
                self.first_frame = time.perf_counter()
                self.head = b""
        window = self.tail + data
        self.chunks += sum(window.count(marker) - self.tail.count(marker) for marker in self.markers)
        if self.wait_for in window and not self.done.done():
            self.done.set_result(None)
        self.tail = window[-64:]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_exception(ConnectionError("connection closed before the stream ended"))


def request_bytes(port: int, count: int, size: int, interval_ms: int) -> bytes:
    """The test stream (every server's shared workload): `count` chunks of `size` bytes."""
    return (f"GET /api/mcp/v2/stream/test?count={count}&size={size}&interval_ms={interval_ms} HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{port}\r\nAccept: text/event-stream\r\nConnection: close\r\n\r\n").encode()


def run_request(port: int, tool_name: str, arguments: dict[str, Any], **options: Any) -> bytes:
    """`POST /api/mcp/v2/stream`: what users call; every event goes through the run's event log."""
    return post_bytes(port, "/api/mcp/v2/stream", {"tool_name": tool_name, "arguments": arguments,
                                                    "stream_options": options})


def post_bytes(port: int, path: str, body: dict[str, Any], headers: str = "") -> bytes:
    data = json.dumps(body).encode()
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n{headers}"
            f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n").encode() + data


def workload(path: str, port: int, *, count: int, size: int = 128, idle: bool = False) -> bytes:
    """The request of one stream: `test` (the test stream), `run` (POST /stream of the bench's `Chunks`
    tool: the same chunks as the test stream, through a run; `Wait` for an hour when `idle`), `run-words`
    (StreamText in word chunks: the chunker's work too, one event per word), `run-deltas` (StreamText with
    no chunking, one event per delta) or `run-sentences` (one sentence a chunk, as /mcp cuts it)."""
    if path == "test":
        return request_bytes(port, 2 if idle else count, size, 3_600_000 if idle else 0)
    if idle:
        return run_request(port, "Wait", {"seconds": 3600})
    if path == "run":
        return run_request(port, "Chunks", {"count": count, "size": size}, include_progress=False)
    chunk_size = {"run-words": "word", "run-deltas": "none"}.get(path, "sentence")
    return run_request(port, "StreamText", {"text": _text(count, chunk_size), "delay_ms": 0}, chunk_size=chunk_size,
                       include_progress=False)


def _text(count: int, chunk_size: str) -> str:
    return ("Go. " if chunk_size == "sentence" else "word ") * count


async def open_stream(port: int, request: bytes, *, wait_for: bytes = END,
                      markers: tuple[bytes, ...] = CHUNKS) -> StreamReader:
    loop = asyncio.get_running_loop()
    reader = StreamReader(request, time.perf_counter(), wait_for=wait_for, markers=markers)
    await loop.create_connection(lambda: reader, "127.0.0.1", port)
    return reader


async def throughput(port: int, streams: int, count: int, size: int, path: str) -> dict[str, Any]:
    request = workload(path, port, count=count, size=size)
    started = time.perf_counter()
    readers = await asyncio.gather(*(open_stream(port, request) for _ in range(streams)))
    results = await asyncio.gather(*(reader.done for reader in readers), return_exceptions=True)
    elapsed = time.perf_counter() - started
    for reader in readers:
        if reader.transport is not None:
            reader.transport.close()
    chunks = sum(reader.chunks for reader in readers)
    errors = sum(1 for result in results if isinstance(result, BaseException))
    incomplete = sum(1 for reader in readers if reader.chunks != count)
    return {"events_per_s": chunks / elapsed, "elapsed_s": elapsed, "errors": errors,
            "incomplete": incomplete}


MCP_HEADERS = "Accept: application/json, text/event-stream\r\n"
MCP_CHUNK = b'"method":"notifications/progress"'


async def mcp_run(port: int, count: int) -> dict[str, Any]:
    """The same tool call through /mcp: `count` sentence chunks (MCP has no stream_options, and the
    default cuts sentences), each a progress notification, counted after the handshake."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(post_bytes(port, "/mcp", {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}}},
        MCP_HEADERS))
    head = (await reader.read()).split(b"\r\n\r\n", 1)[0].decode()
    writer.close()
    session = next(line.split(":", 1)[1].strip() for line in head.splitlines()
                   if line.lower().startswith("mcp-session-id:"))
    request = post_bytes(port, "/mcp", {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
        "name": "StreamText", "arguments": {"text": _text(count, "sentence"), "delay_ms": 0},
        "_meta": {"progressToken": 1}}}, MCP_HEADERS + f"Mcp-Session-Id: {session}\r\n")
    started = time.perf_counter()
    stream = await open_stream(port, request, wait_for=b'"result":', markers=(MCP_CHUNK,))
    error = 0
    try:
        await stream.done
    except ConnectionError:
        error = 1
    elapsed = time.perf_counter() - started
    if stream.transport is not None:
        stream.transport.close()
    return {"events_per_s": stream.chunks / elapsed, "errors": error, "incomplete": int(stream.chunks != count)}


async def first_event(port: int, requests: int, path: str) -> dict[str, Any]:
    """Time from connecting to the first complete frame: the test stream, or a run of Echo."""
    request = request_bytes(port, 1, 128, 0) if path == "test" else run_request(port, "Echo", {"text": "hi"})
    latencies = []
    errors = 0
    for _ in range(requests):
        reader = None
        try:
            reader = await open_stream(port, request)
            await reader.done
            assert reader.first_frame is not None
            latencies.append((reader.first_frame - reader.started) * 1000)
        except (ConnectionError, AssertionError):
            errors += 1
        finally:
            if reader is not None and reader.transport is not None:
                reader.transport.close()
    latencies.sort()
    return {"p50_ms": statistics.median(latencies),
            "p99_ms": latencies[min(len(latencies) - 1, round(0.99 * len(latencies)))], "errors": errors}


async def idle(port: int, streams: int, path: str) -> dict[str, Any]:
    """Open idle streams, say READY, hold them until told to close on stdin: test streams with one
    chunk sent and the next an hour away, or runs of `Wait(3600)` with their `connected` received."""
    request = workload(path, port, count=2, idle=True)
    ready_at = CHUNKS[0][:-1] if path == "test" else b"event: connected"
    readers = []
    for start in range(0, streams, 100):
        readers += await asyncio.gather(*(open_stream(port, request, wait_for=ready_at)
                                          for _ in range(start, min(streams, start + 100))))
    results = await asyncio.gather(*(reader.done for reader in readers), return_exceptions=True)
    errors = sum(1 for result in results if isinstance(result, BaseException))
    print(json.dumps({"ready": len(readers) - errors, "errors": errors}), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    for reader in readers:
        if reader.transport is not None:
            reader.transport.close()
    await asyncio.sleep(0.2)
    return {"errors": errors}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("mode", choices=["throughput", "first-event", "idle", "mcp"])
    parser.add_argument("--path", choices=["test", "run", "run-words", "run-deltas", "run-sentences"], default="test",
                        help="test: GET /stream/test (every server); run*: POST /stream (rhetor_stream's runs)")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--streams", type=int, default=1)
    parser.add_argument("--count", type=int, default=200_000)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--core", type=int, default=1)
    args = parser.parse_args()
    pin(args.core)
    raise_fd_limit()
    try:
        import uvloop
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass
    if args.mode == "throughput":
        result = asyncio.run(throughput(args.port, args.streams, args.count, args.size, args.path))
    elif args.mode == "mcp":
        result = asyncio.run(mcp_run(args.port, args.count))
    elif args.mode == "first-event":
        result = asyncio.run(first_event(args.port, args.requests, args.path))
    else:
        result = asyncio.run(idle(args.port, args.streams, args.path))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
