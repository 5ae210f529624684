"""Tool-call events per second through `/mcp` against the same call through `/api/mcp/v2/stream`.

Both are runs of StreamText over the memory store, cut into sentence chunks (MCP has no
stream_options, and the default cuts sentences): the difference is the MCP framing, one JSON-RPC
progress notification per chunk, built from the run's log, against our own `chunk` events.
"""
from __future__ import annotations

import statistics

from bench.harness import PY, loadgen, start_server

EVENTS = 20_000


def compare(runs: int, events: int = EVENTS) -> str:
    process, port = start_server("rhetor_stream (mcp)", lambda port: [
        PY, "-m", "rhetor_stream", "--port", str(port), "--log-level", "warning"])
    try:
        loadgen("mcp", port, count=1000)  # warm-up
        figures = {"rest": [loadgen("throughput", port, path="run-sentences", count=events) for _ in range(runs)],
                   "mcp": [loadgen("mcp", port, count=events) for _ in range(runs)]}
    finally:
        process.terminate()
        process.wait(timeout=10)
    rest, mcp = ({"events_per_s": statistics.median(result["events_per_s"] for result in results),
                  "errors": sum(result["errors"] + result["incomplete"] for result in results)}
                 for results in figures.values())
    return "\n".join([
        "| tool call | events/s | vs /api/mcp/v2/stream | errors |", "|---|---:|---:|---:|",
        f"| POST /api/mcp/v2/stream | {rest['events_per_s']:,.0f} | 1.00x | {rest['errors']} |",
        f"| POST /mcp (tools/call) | {mcp['events_per_s']:,.0f} | "
        f"{mcp['events_per_s'] / rest['events_per_s']:.2f}x | {mcp['errors']} |"])
