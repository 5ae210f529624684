"""The price of resumability: runs through the memory store against Redis Streams, and what a
second worker process adds on a shared Redis store.

The same runs (StreamText cut into word chunks, one event per word) are streamed through
`POST /api/mcp/v2/stream`: one run alone, then many at once. A run's events go through its store
before they reach its client. Redis runs on the load generator's core; the `--workers` comparison
lets the server use both cores, one worker against two. Each pair (memory and Redis; one worker and
two) is measured side by side, in alternating rounds.
"""
from __future__ import annotations

import shutil
import socket
import statistics
import subprocess
import time
from typing import Any

from bench.harness import SERVERS, cpu_seconds, free_port, loadgen, start_server


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


def measure(plan: dict[str, int], *flags: str, pinned: bool = True, redis_pid: int | None = None) -> dict[str, Any]:
    """One run alone and `streams` runs at once, events per second (medians), on a fresh server; with
    the CPU microseconds per event of the server (one process: `pinned`) and of redis-server."""
    return measure_side_by_side(plan, {"": flags}, pinned=pinned, redis_pid=redis_pid)[""]


def measure_side_by_side(plan: dict[str, int], servers: dict[str, tuple[str, ...]], *, pinned: bool = True,
                         redis_pid: int | None = None) -> dict[str, dict[str, Any]]:
    """`measure` for several servers (name: flags) started together and measured in alternating
    rounds, the order turned each round: figures of two servers measured minutes apart moved with
    the shared machine's load more than with the servers (`--workers 2` against one worker gave
    1.1x to 1.9x on the same code, one measured after the other)."""
    started: dict[str, tuple[subprocess.Popen[bytes], int]] = {}
    figures = {name: {key: [] for key in ("single", "concurrent", "single_cpu", "concurrent_cpu",
                                         "single_redis_cpu", "concurrent_redis_cpu")} for name in servers}
    errors = dict.fromkeys(servers, 0)
    order = list(servers)
    try:
        for name, flags in servers.items():
            started[name] = start_server(f"rhetor_stream {' '.join(flags)}", lambda port, flags=flags: [
                *SERVERS["rhetor_stream"](port), *flags], pinned=pinned)
            loadgen("throughput", started[name][1], path="run", count=1000)  # warm-up (workers import lazily)
        for _ in range(plan["runs"]):
            for name in order:
                process, port = started[name]
                for key, streams, count in (("single", 1, plan["run_count"]),
                                            ("concurrent", plan["streams"], plan["stream_count"])):
                    server, redis = cpu_seconds(process.pid), cpu_seconds(redis_pid) if redis_pid else 0.0
                    result = loadgen("throughput", port, path="run", streams=streams, count=count)
                    events = streams * count
                    figures[name][key].append(result["events_per_s"])
                    figures[name][f"{key}_cpu"].append(1e6 * (cpu_seconds(process.pid) - server) / events)
                    if redis_pid:
                        figures[name][f"{key}_redis_cpu"].append(1e6 * (cpu_seconds(redis_pid) - redis) / events)
                    errors[name] += result["errors"] + result["incomplete"]
            order.reverse()
    finally:
        for process, _port in started.values():
            process.terminate()
            process.wait(timeout=10)
    return {name: {**{key: statistics.median(values) if values else 0.0 for key, values in figures[name].items()},
                   "errors": errors[name]} for name in servers}


def compare(plan: dict[str, int]) -> tuple[str, list[str]]:
    """The event-store table and its target lines."""
    streams = plan["streams"]
    lines = [f"| event store | 1 run events/s | {streams} runs events/s | vs memory (1 / {streams}) "
             f"| server CPU us/event (1 / {streams}) | redis-server CPU us/event (1 / {streams}) | errors |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    redis = start_redis()
    if redis is None:
        lines += [_memory_row(measure(plan, "--event-store", "memory")),
                  "| redis | (redis-server not installed: skipped) | | | | | |"]
        return "\n".join(lines), []
    process, url = redis
    try:
        stores = measure_side_by_side(plan, {"memory": ("--event-store", "memory"), "redis": ("--event-store", url)},
                                      redis_pid=process.pid)
        workers = measure_side_by_side(plan, {"one": ("--event-store", url),
                                              "two": ("--event-store", url, "--workers", "2")}, pinned=False)
    finally:
        process.terminate()
        process.wait(timeout=10)
    memory, shared, one, two = stores["memory"], stores["redis"], workers["one"], workers["two"]
    lines.append(_memory_row(memory))
    lines.append(f"| redis | {shared['single']:,.0f} | {shared['concurrent']:,.0f} "
                 f"| {shared['single'] / memory['single']:.2f}x / {shared['concurrent'] / memory['concurrent']:.2f}x "
                 f"| {shared['single_cpu']:.2f} / {shared['concurrent_cpu']:.2f} "
                 f"| {shared['single_redis_cpu']:.2f} / {shared['concurrent_redis_cpu']:.2f} | {shared['errors']} |")
    lines.append(f"| redis, 1 worker on both cores | {one['single']:,.0f} | {one['concurrent']:,.0f} | | | | "
                 f"{one['errors']} |")
    lines.append(f"| redis, `--workers 2` | {two['single']:,.0f} | {two['concurrent']:,.0f} | | | | {two['errors']} |")
    ratio = shared["single"] / memory["single"]
    scale = two["concurrent"] / one["concurrent"]
    checks = [
        f"- {'PASS' if ratio >= 0.5 else 'FAIL'} redis store vs memory store through a run (target >= 0.5x): "
        f"{ratio:.2f}x",
        f"- {'PASS' if not shared['errors'] else 'FAIL'} {streams} concurrent redis-backed runs without errors: "
        f"{shared['errors']} errors",
        f"- {'PASS' if scale >= 1.6 else 'FAIL'} --workers 2 vs 1 on {streams} concurrent runs "
        f"(target >= 1.6x): {scale:.2f}x",
    ]
    return "\n".join(lines), checks


def _memory_row(memory: dict[str, Any]) -> str:
    return (f"| memory | {memory['single']:,.0f} | {memory['concurrent']:,.0f} | 1.00x / 1.00x "
            f"| {memory['single_cpu']:.2f} / {memory['concurrent_cpu']:.2f} | | {memory['errors']} |")
