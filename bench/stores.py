"""Events per second through a run's event store: the memory store against Redis Streams.

The same run (StreamText cut into word chunks, so one event per word) is streamed through
`POST /api/mcp/v2/stream` with each store; a run's events go through the store before they reach
its client, so this is the price of resumability. Redis runs on the load generator's core.
"""
from __future__ import annotations

import shutil
import socket
import statistics
import subprocess
import time
from typing import Any

from bench.harness import PY, free_port, loadgen, start_server

EVENTS = 20_000


def start_redis() -> tuple[subprocess.Popen[bytes], str] | None:
    binary = shutil.which("redis-server")
    if binary is None:
        return None
    port = free_port()
    process = subprocess.Popen(["taskset", "-c", "1", binary, "--port", str(port), "--bind", "127.0.0.1",
                                "--save", "", "--appendonly", "no"] if shutil.which("taskset") else
                               [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process, f"redis://127.0.0.1:{port}/0"
        except OSError:
            if time.monotonic() > deadline:
                process.kill()
                return None
            time.sleep(0.05)


def measure(store: str, runs: int, events: int) -> dict[str, Any]:
    process, port = start_server(f"rhetor_stream --event-store {store}", lambda port: [
        PY, "-m", "rhetor_stream", "--port", str(port), "--log-level", "warning", "--event-store", store])
    try:
        loadgen("run", port, count=1000)  # warm-up
        results = [loadgen("run", port, count=events) for _ in range(runs)]
    finally:
        process.terminate()
        process.wait(timeout=10)
    return {"events_per_s": statistics.median(result["events_per_s"] for result in results),
            "errors": sum(result["errors"] + result["incomplete"] for result in results)}


def compare(runs: int, events: int = EVENTS) -> str:
    lines = ["| event store | events/s through a run | vs memory | errors |", "|---|---:|---:|---:|"]
    memory = measure("memory", runs, events)
    lines.append(f"| memory | {memory['events_per_s']:,.0f} | 1.00x | {memory['errors']} |")
    redis = start_redis()
    if redis is None:
        lines.append("| redis | (redis-server not installed: skipped) | | |")
        return "\n".join(lines)
    process, url = redis
    try:
        result = measure(url, runs, events)
    finally:
        process.terminate()
        process.wait(timeout=10)
    lines.append(f"| redis | {result['events_per_s']:,.0f} | {result['events_per_s'] / memory['events_per_s']:.2f}x "
                 f"| {result['errors']} |")
    return "\n".join(lines)
