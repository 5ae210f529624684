"""The real `python -m rhetor_stream` process: start-up output, a raw-socket read, clean shutdown."""
from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from rhetor_stream.sse.parser import SSEParser
from tests.conftest import ROOT, spawn_server, stop_server


class Server:
    def __init__(self, process: subprocess.Popen[str], port: int) -> None:
        self.process = process
        self.port = port

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=10)


@pytest.fixture
def server() -> Iterator[Server]:
    process, url = spawn_server("--heartbeat", "0")
    assert process.stdout is not None
    assert "Interactive page: http://127.0.0.1:" in process.stdout.readline()
    yield Server(process, int(url.rsplit(":", 1)[1]))
    stop_server(process)


def _request(sock: socket.socket, method: str, path: str, body: bytes = b"") -> None:
    head = (f"{method} {path} HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n")
    sock.sendall(head.encode() + body)


class RawStream:
    """A chunked SSE response read straight off a socket, parsed with the project's parser."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.raw = b""

    def read_until(self, name: str) -> list[tuple[str, str]]:
        while True:
            events = self.events()
            if any(event == name for event, _ in events):
                return events
            data = self.sock.recv(65536)
            if not data:
                return events
            self.raw += data

    def events(self) -> list[tuple[str, str]]:
        _, separator, body = self.raw.partition(b"\r\n\r\n")
        if not separator:
            return []
        return [(event.event, event.data) for event in SSEParser().feed(_dechunk(body))]


def _dechunk(body: bytes) -> bytes:
    out = b""
    while body:
        size_line, sep, rest = body.partition(b"\r\n")
        if not sep:
            break
        size = int(size_line, 16)
        if size == 0 or len(rest) < size:
            out += rest[:size] if size else b""
            break
        out += rest[:size]
        body = rest[size + 2:]
    return out


def test_raw_socket_reads_the_test_stream(server: Server) -> None:
    with server.connect() as sock:
        _request(sock, "GET", "/api/mcp/v2/stream/test?count=3&size=16&interval_ms=0")
        stream = RawStream(sock)
        events = stream.read_until("disconnect")
    raw = stream.raw
    status_line = raw.split(b"\r\n", 1)[0]
    assert status_line == b"HTTP/1.1 200 OK"
    assert b"Content-Type: text/event-stream" in raw
    assert [name for name, _ in events] == ["connected", "progress", "chunk", "chunk", "chunk",
                                            "complete", "disconnect"]


def test_sigterm_ends_open_streams_and_exits_cleanly(server: Server) -> None:
    with server.connect() as sock:
        _request(sock, "POST", "/api/mcp/v2/stream",
                 json.dumps({"tool_name": "Wait", "arguments": {"seconds": 60}}).encode())
        stream = RawStream(sock)
        stream.read_until("connected")
        started = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        events = stream.read_until("disconnect")
    names = [name for name, _ in events]
    assert names[0] == "connected" and names[-2:] == ["error", "disconnect"]
    assert json.loads(events[-2][1])["code"] == "server_shutdown"
    assert json.loads(events[-1][1])["reason"] == "server_shutdown"
    assert server.process.wait(timeout=5) == 0
    assert time.monotonic() - started < 5
    stderr = server.process.stderr.read() if server.process.stderr else ""
    assert "Traceback" not in stderr


def test_bad_setting_is_a_clear_error_not_a_traceback() -> None:
    result = subprocess.run([sys.executable, "-m", "rhetor_stream", "--queue-size", "0"], cwd=ROOT,
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert "--queue-size (RHETOR_QUEUE_SIZE) must be greater than 0" in result.stderr
    assert "Traceback" not in result.stderr


def test_help_lists_flags_and_variables() -> None:
    result = subprocess.run([sys.executable, "-m", "rhetor_stream", "--help"], cwd=ROOT,
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0
    for flag in ("--host", "--port", "--log-level", "--cors-origin", "--send-timeout", "--heartbeat",
                 "RHETOR_PORT", "OPENAI_API_KEY"):
        assert flag in result.stdout
