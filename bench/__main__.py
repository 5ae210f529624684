"""`python -m bench`: every server in turn, the same workload, one load generator on another core.

Methodology: the server process is pinned to core 0 and the load generator (bench/loadgen.py) to
core 1, so neither steals the other's CPU. Throughput figures are medians of three runs after a
warm-up; memory is the growth of the server's resident set while it holds N idle streams, divided
by N. The targets are ratios within one run, because absolute figures move with the machine.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
SERVERS: dict[str, Callable[[int], list[str]]] = {
    "rhetor_stream": lambda port: [PY, "-m", "rhetor_stream", "--port", str(port), "--log-level", "warning"],
    "aiohttp-sse": lambda port: [PY, "-m", "bench.peers.aiohttp_sse_peer", "--port", str(port)],
    "sse-starlette": lambda port: [PY, "-m", "bench.peers.sse_starlette_peer", "--port", str(port)],
    "raw floor": lambda port: [PY, "-m", "bench.peers.raw_floor", "--port", str(port)],
}
FULL = {"single_count": 200_000, "streams": 1000, "stream_count": 500, "requests": 500, "idle": 2000, "runs": 3}
QUICK = {"single_count": 20_000, "streams": 100, "stream_count": 200, "requests": 50, "idle": 200, "runs": 1}


def _server_setup() -> None:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {0})
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(name: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    process = subprocess.Popen(SERVERS[name](port), cwd=ROOT, preexec_fn=_server_setup,
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


def loadgen(mode: str, port: int, **options: int) -> dict[str, Any]:
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


def idle_memory(process: subprocess.Popen[bytes], port: int, streams: int) -> tuple[float, int]:
    before = rss_kib(process.pid)
    holder = subprocess.Popen([PY, "-m", "bench.loadgen", "idle", "--port", str(port), "--streams", str(streams)],
                              cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdin is not None
    ready = json.loads(holder.stdout.readline())
    time.sleep(0.5)
    after = rss_kib(process.pid)
    holder.stdin.write("\n")
    holder.stdin.flush()
    holder.wait(timeout=60)
    return (after - before) / max(1, ready["ready"]), ready["errors"]


def measure(name: str, plan: dict[str, int]) -> dict[str, Any]:
    process, port = start_server(name)
    try:
        # Memory first, on a fresh process: after the throughput runs the allocator keeps freed memory
        # around and idle streams would appear to cost nothing.
        loadgen("throughput", port, streams=10, count=100)  # warm-up: imports, first connections
        kib, errors = idle_memory(process, port, plan["idle"])
        loadgen("throughput", port, streams=10, count=2000)
        single, concurrent = [], []
        for _ in range(plan["runs"]):
            result = loadgen("throughput", port, streams=1, count=plan["single_count"])
            single.append(result["events_per_s"])
            errors += result["errors"] + result["incomplete"]
            result = loadgen("throughput", port, streams=plan["streams"], count=plan["stream_count"])
            concurrent.append(result["events_per_s"])
            errors += result["errors"] + result["incomplete"]
        latency = loadgen("first-event", port, requests=plan["requests"])
        errors += latency["errors"]
        return {"single": statistics.median(single), "concurrent": statistics.median(concurrent),
                "p50": latency["p50_ms"], "p99": latency["p99_ms"], "kib": kib, "errors": errors}
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def table(results: dict[str, dict[str, Any]], plan: dict[str, int]) -> str:
    lines = [f"| server | 1 stream events/s | {plan['streams']} streams events/s | first event p50 ms | "
             f"p99 ms | KiB per idle stream ({plan['idle']}) | errors |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for name, r in results.items():
        lines.append(f"| {name} | {r['single']:,.0f} | {r['concurrent']:,.0f} | {r['p50']:.2f} | {r['p99']:.2f} "
                     f"| {r['kib']:.1f} | {r['errors']} |")
    return "\n".join(lines)


def targets(results: dict[str, dict[str, Any]]) -> list[str]:
    ours = results.get("rhetor_stream")
    if ours is None:
        return []
    checks: list[tuple[str, float, float]] = []
    for peer, factor in (("sse-starlette", 2.0), ("aiohttp-sse", 1.5), ("raw floor", 0.8)):
        if peer in results:
            for key, label in (("single", "1 stream"), ("concurrent", "concurrent")):
                checks.append((f"{label} throughput vs {peer} (target >= {factor}x)",
                               ours[key] / results[peer][key], factor))
    lines = [f"- {'PASS' if ratio >= factor else 'FAIL'} {label}: {ratio:.2f}x" for label, ratio, factor in checks]
    for peer in ("sse-starlette", "aiohttp-sse"):
        if peer in results:
            ok = ours["kib"] < results[peer]["kib"]
            lines.append(f"- {'PASS' if ok else 'FAIL'} memory per idle stream below {peer}: "
                         f"{ours['kib']:.1f} vs {results[peer]['kib']:.1f} KiB")
    if ours["errors"]:
        lines.append(f"- FAIL rhetor_stream had {ours['errors']} errors or incomplete streams")
    return lines


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    return (f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, "
            f"aiohttp {aiohttp.__version__}, {platform.system()} {platform.release()}")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--servers", nargs="+", choices=list(SERVERS), default=list(SERVERS))
    parser.add_argument("--quick", action="store_true", help="small counts: a smoke run in seconds")
    parser.add_argument("--markdown", type=Path, help="also write the table (with date and machine) here")
    args = parser.parse_args()
    plan = QUICK if args.quick else FULL
    results = {}
    for name in args.servers:
        print(f"measuring {name} ...", file=sys.stderr, flush=True)
        results[name] = measure(name, plan)
    report = "\n".join([table(results, plan), "", *targets(results)])
    print(report)
    if args.markdown:
        stamp = datetime.date.today().isoformat()
        args.markdown.write_text(f"Measured {stamp} on {machine()}; medians of {plan['runs']} runs.\n\n{report}\n")


if __name__ == "__main__":
    main()
