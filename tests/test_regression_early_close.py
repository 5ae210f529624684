"""Regression: a client that left before its stream's headers went out left its run running.

`POST /stream` created (and started) the run, then `response.prepare()` raised on the closed
transport, and nothing unsubscribed the client, so the run, and any LLM call in it, went on for
nobody: 440 of 440 immediate closes on the memory store. With Redis, aiohttp could also cancel the
handler while the run's record was being written, leaving a record that said "running" for a day.
Here hundreds of clients send a whole request and leave at once, with a FIN or with a RST, against a
real server process (aiohttp cancels handlers of vanished clients there), on both stores.
"""
from __future__ import annotations

import socket
import struct
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import orjson
import pytest

from tests.conftest import spawn_server, stop_server

BODY = b'{"tool_name":"Wait","arguments":{"seconds":3600}}'
REQUEST = (b"POST /api/mcp/v2/stream HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
           b"Content-Length: %d\r\n\r\n%s" % (len(BODY), BODY))
CLIENTS = 200


@pytest.fixture(params=["memory", "redis"])
def server(request: pytest.FixtureRequest) -> Iterator[str]:
    args = ["--disconnect-poll", "0.02"]
    if request.param == "redis":
        args += ["--event-store", request.getfixturevalue("redis_url")]
    process, url = spawn_server(*args)
    yield url
    stop_server(process)


def _health(url: str) -> dict[str, object]:
    """The counters of /health, also when it answers 503 (a busy Redis missed its 1 s ping)."""
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=10) as answer:
            return orjson.loads(answer.read())  # type: ignore[no-any-return]
    except urllib.error.HTTPError as error:
        return orjson.loads(error.read())  # type: ignore[no-any-return]


def _leave_at_once(port: int, *, reset: bool) -> None:
    sock = socket.create_connection(("127.0.0.1", port))
    if reset:  # close() then sends a RST instead of a FIN
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.sendall(REQUEST)
    sock.close()


@pytest.mark.parametrize("reset", [False, True], ids=["fin", "rst"])
def test_clients_leaving_at_once_leave_no_run_behind(server: str, reset: bool) -> None:
    port = int(server.rsplit(":", 1)[1])
    for _ in range(CLIENTS):
        _leave_at_once(port, reset=reset)
    deadline = time.monotonic() + 20
    while (health := _health(server))["active_tools"] or health["active_streams"]:
        assert time.monotonic() < deadline, f"runs left after {CLIENTS} early closes: {health}"
        time.sleep(0.05)
    time.sleep(0.5)  # a request the server had not reached yet would show up now
    assert _health(server)["active_tools"] == 0
