"""What every part of the bench shares: the servers, starting them pinned, and the load generator."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.loadgen import raise_fd_limit

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
SERVERS: dict[str, Callable[[int], list[str]]] = {
    # The load generator is one client address: the per-client cap must not be what is measured.
    "rhetor_stream": lambda port: [PY, "-m", "rhetor_stream", "--port", str(port), "--log-level", "warning",
                                   "--max-streams", "10000", "--max-streams-per-client", "10000",
                                   "--tools", str(ROOT / "bench" / "tools.py")],
    "aiohttp-sse": lambda port: [PY, "-m", "bench.peers.aiohttp_sse_peer", "--port", str(port)],
    "sse-starlette": lambda port: [PY, "-m", "bench.peers.sse_starlette_peer", "--port", str(port)],
    "raw floor": lambda port: [PY, "-m", "bench.peers.raw_floor", "--port", str(port)],
}


def server_setup() -> None:
    """In the server's child process: pin it to core 0 and lift its fd limit to the hard limit."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {0})
    raise_fd_limit()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(name: str, command: Callable[[int], list[str]] | None = None, *,
                 pinned: bool = True) -> tuple[subprocess.Popen[bytes], int]:
    """Start a server on a free port; `pinned=False` lets it use every core (several workers)."""
    port = free_port()
    process = subprocess.Popen((command or SERVERS[name])(port), cwd=ROOT,
                               preexec_fn=server_setup if pinned else raise_fd_limit,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return process, port
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start") from None
            time.sleep(0.05)


def loadgen(mode: str, port: int, **options: int | str) -> dict[str, Any]:
    args = [PY, "-m", "bench.loadgen", mode, "--port", str(port)]
    for key, value in options.items():
        args += [f"--{key}", str(value)]
    output = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=600, check=True).stdout
    return json.loads(output.strip().splitlines()[-1])  # type: ignore[no-any-return]


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process, from /proc (Linux): per event or per second, a figure
    the machine's load barely moves."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stolen_seconds() -> float | None:
    """CPU time the hypervisor gave to other guests, all cores together (/proc/stat's `steal`), or
    None where there is no such count. On a shared virtual machine it tells a noisy run from a quiet
    one: the same code measured while others took the cores gives figures half as good."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    except OSError:
        return None
    return int(fields[8]) / os.sysconf("SC_CLK_TCK") if fields[0] == "cpu" and len(fields) > 8 else None
