"""Regression: SIGTERM with clients that stopped reading took three times --shutdown-timeout.

With 20 stuck readers among 350 streams the process needed 12.2 s against the README's "exits within
--shutdown-timeout" (4 s): the final frames of a stream whose client does not read are never
written, and aiohttp's runner then waited the same timeout twice more per connection. Now streams
that have not ended when their share of the timeout is up have their connections aborted.
"""
from __future__ import annotations

import json
import signal
import socket
import time

from tests.conftest import spawn_server, stop_server

SHUTDOWN_TIMEOUT = 3.0
STUCK = 10  # of each kind


def stuck_client(port: int, request: bytes) -> socket.socket:
    """A client that sends its request and never reads: a tiny receive buffer fills at once."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.sendall(request)
    return sock


def test_sigterm_with_stuck_readers_exits_within_the_shutdown_timeout() -> None:
    process, url = spawn_server("--shutdown-timeout", str(SHUTDOWN_TIMEOUT), "--send-timeout", "60",
                                "--log-level", "warning")
    port = int(url.rsplit(":", 1)[1])
    body = json.dumps({"tool_name": "StreamText",
                       "arguments": {"text": "word " * 100_000, "delay_ms": 0},
                       "stream_options": {"chunk_size": "word"}}).encode()
    clients = []
    try:
        for _ in range(STUCK):
            clients.append(stuck_client(port, b"GET /api/mcp/v2/stream/test?count=1000000&size=4096"
                                              b"&interval_ms=0 HTTP/1.1\r\nHost: x\r\n\r\n"))
            clients.append(stuck_client(port, b"POST /api/mcp/v2/stream HTTP/1.1\r\nHost: x\r\n"
                                              b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                                        % (len(body), body)))
        time.sleep(1.5)  # every stream writes until its client's buffers are full
        assert process.poll() is None
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=10 * SHUTDOWN_TIMEOUT)
        took = time.monotonic() - started
    finally:
        for client in clients:
            client.close()
        stop_server(process)
    assert code == 0
    # Interpreter start-up is not part of it, interpreter exit is: a quarter of the timeout for that.
    assert took < SHUTDOWN_TIMEOUT * 1.25, f"exit took {took:.2f}s with --shutdown-timeout {SHUTDOWN_TIMEOUT}"
    stderr = process.stderr.read() if process.stderr else ""
    assert "Traceback" not in stderr
