"""Regression: a burst of connections waited seconds to connect at aiohttp's default backlog of 128.

`make bench` opens 1000 streams at once; with the listening socket's queue at 128, the kernel dropped
the SYNs past it and those clients connected only after the SYN was retried (1 s, then 3 s), so the
same run measured anywhere between 26,000 and 150,000 events a second. `--listen-backlog` (1024)
now sizes the queue. The server is stopped here (SIGSTOP): nothing is accepted, so only the kernel's
queue decides how many handshakes complete; a dropped SYN is not retried for a second, well past
the half second the test waits.
"""
from __future__ import annotations

import os
import selectors
import signal
import socket
import time

from tests.conftest import spawn_server, stop_server

BURST = 400


def test_a_burst_of_connections_is_queued_by_the_kernel() -> None:
    process, url = spawn_server()
    port = int(url.rsplit(":", 1)[1])
    sockets: list[socket.socket] = []
    os.kill(process.pid, signal.SIGSTOP)
    try:
        with selectors.DefaultSelector() as selector:
            for _ in range(BURST):
                sock = socket.socket()
                sock.setblocking(False)
                sock.connect_ex(("127.0.0.1", port))
                sockets.append(sock)
                selector.register(sock, selectors.EVENT_WRITE)
            connected = 0
            deadline = time.monotonic() + 0.5
            while connected < BURST:
                left = deadline - time.monotonic()
                for key, _ in selector.select(max(left, 0)):  # a last look even when the test was slow
                    selector.unregister(key.fileobj)
                    sock = key.fileobj
                    assert isinstance(sock, socket.socket)
                    connected += sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
                if left <= 0:
                    break
        assert connected == BURST, f"{connected} of {BURST} connections completed; the rest wait for a SYN retry"
    finally:
        for sock in sockets:
            sock.close()
        os.kill(process.pid, signal.SIGCONT)
        stop_server(process)
