"""What open but idle runs cost: N detached `Wait` runs nobody follows, and the server's CPU meanwhile.

    python -m bench.idle_runs --runs 5000 --seconds 10 [-- extra server flags]

Prints one JSON line: the runs started, the server's CPU share (1.0 = one core) while they sit idle,
and the same with nothing open, so the difference is what the runs cost.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import time

import aiohttp

from bench.harness import SERVERS, cpu_seconds, start_server


def cpu_share(pid: int, seconds: float) -> float:
    before, started = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    return (cpu_seconds(pid) - before) / (time.monotonic() - started)


async def start_runs(port: int, runs: int) -> int:
    body = {"tool_name": "Wait", "arguments": {"seconds": 3600}}
    connector = aiohttp.TCPConnector(limit=50)
    async with aiohttp.ClientSession(connector=connector) as session:
        async def one() -> int:
            async with session.post(f"http://127.0.0.1:{port}/api/mcp/v2/runs", json=body) as response:
                return response.status
        statuses = await asyncio.gather(*(one() for _ in range(runs)))
    return sum(status == 202 for status in statuses)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("server_args", nargs="*", help="extra flags for the server (after --)")
    args = parser.parse_args()
    process, port = start_server("rhetor_stream", lambda port: [*SERVERS["rhetor_stream"](port), *args.server_args])
    try:
        baseline = cpu_share(process.pid, args.seconds / 2)
        started = asyncio.run(start_runs(port, args.runs))
        time.sleep(2)  # let the start-up burst settle
        loaded = cpu_share(process.pid, args.seconds)
    finally:
        process.terminate()
        process.wait()
    print(json.dumps({"runs": started, "seconds": args.seconds, "cpu_idle_server": round(baseline, 3),
                      "cpu_with_runs": round(loaded, 3)}))


if __name__ == "__main__":
    main()
