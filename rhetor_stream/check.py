"""`python -m rhetor_stream.check`: run real streams against a live server and check them.

It prints each event as it arrives (with a progress bar for `progress` events), checks the event
order and payload shapes, and ends with a summary; the exit status is 0 when everything passed, 1
when a check failed and 2 when the server could not be reached.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

import aiohttp

from rhetor_stream.client import StreamClient, StreamClientError, StreamEvent
from rhetor_stream.sse.ids import sequence_number

SHAPES: dict[str, tuple[str, ...]] = {
    "connected": ("run_id", "tool_name", "timestamp", "message"),
    "progress": ("stage", "percentage", "message", "elapsed"),
    "chunk": ("content",),
    "message": ("speaker", "name", "content", "round"),
    "complete": ("result", "execution_time", "timestamp", "message"),
    "error": ("error", "code", "tool_name", "timestamp"),
    "disconnect": ("message", "timestamp"),
}


def problems(events: Sequence[StreamEvent]) -> list[str]:
    """What is wrong with a finished stream's events (empty when nothing is)."""
    found: list[str] = []
    types = [event.type for event in events]
    if not types or types[0] != "connected":
        found.append("the first event is not 'connected'")
    if not types or types[-1] != "disconnect":
        found.append("the last event is not 'disconnect'")
    endings = [kind for kind in types if kind in ("complete", "error")]
    if len(endings) != 1 or len(types) < 2 or types[-2] != endings[0]:
        found.append(f"expected exactly one 'complete' or 'error' just before 'disconnect', got {endings}")
    numbers = [number for event in events if (number := sequence_number(event.id)) is not None]
    if len(numbers) != len(events) or numbers != sorted(set(numbers)):
        found.append(f"event ids are not strictly increasing: {[event.id for event in events][:8]}...")
    for event in events:
        expected = SHAPES.get(event.type)
        if expected is None:
            found.append(f"unknown event type {event.type!r}")
            continue
        missing = [key for key in expected if not isinstance(event.data, dict) or key not in event.data]
        if missing:
            found.append(f"{event.type} event {event.id} lacks {', '.join(missing)}")
        elif event.type == "chunk" and not isinstance(event.data["content"], dict):
            found.append(f"chunk event {event.id} has no content object")
    return found


def show(event: StreamEvent, *, width: int = 24) -> str:
    data = event.data if isinstance(event.data, dict) else {}
    if event.type == "progress":
        percentage = data.get("percentage")
        filled = 0 if percentage is None else round(width * percentage / 100)
        bar = "#" * filled + "." * (width - filled) if percentage is not None else "~" * width
        label = "  ?%" if percentage is None else f"{percentage:>4.0f}%"
        return f"  progress [{bar}] {label} {data.get('stage', '')}"
    if event.type == "chunk":
        content = data.get("content", {})
        text = content.get("content", "") if isinstance(content, dict) else str(content)
        return f"  chunk    {text.strip()[:70]!r}"
    if event.type == "message":
        return f"  message  {data.get('speaker')} (round {data.get('round')}): {str(data.get('content', ''))[:50]!r}"
    if event.type == "error":
        return f"  error    {data.get('code')}: {data.get('error')}"
    shown = ", ".join(f"{k}={v}" for k, v in data.items() if k in ("tool_name", "execution_time", "reason"))
    return f"  {event.type:<8} {shown}"


async def _collect(events: AsyncIterator[StreamEvent], quiet: bool) -> list[StreamEvent]:
    seen = []
    async for event in events:
        seen.append(event)
        if not quiet:
            print(show(event), flush=True)
    return seen


async def check_basic(client: StreamClient, quiet: bool) -> list[str]:
    health = await client.health()
    found = [] if health.get("status") == "ok" else [f"/health says {health}"]
    text = "Streams should arrive in sentences. This is the second one! And a third?"
    events = await _collect(client.stream("StreamText", {"text": text, "delay_ms": 20}), quiet)
    found += problems(events)
    joined = "".join(e.data["content"]["content"] for e in events if e.type == "chunk")
    if joined != text:
        found.append("StreamText chunks do not join back to the text")
    return found


async def check_specialist(client: StreamClient, quiet: bool) -> list[str]:
    roster = await client.process("ListSpecialists")
    specialist = next((s for s in roster if s["id"] != "rhetor-orchestrator"), roster[0])
    events = await _collect(client.stream("SendMessageToSpecialistStream", {
        "specialist_id": specialist["id"], "message": "Give me three tips for reliable streaming APIs."}), quiet)
    found = problems(events)
    complete = [e for e in events if e.type == "complete"]
    chunks = "".join(e.data["content"]["content"] for e in events if e.type == "chunk")
    if not complete or chunks != complete[0].data["result"]["content"]:
        found.append("the specialist's chunks do not add up to the complete answer")
    return found


async def check_team(client: StreamClient, quiet: bool) -> list[str]:
    roster = [s["id"] for s in await client.process("ListSpecialists") if s["id"] != "rhetor-orchestrator"]
    events = await _collect(client.stream("OrchestrateTeamChatStream", {
        "topic": "How should we roll out streaming to all users?", "specialists": roster[:2], "rounds": 1}), quiet)
    found = problems(events)
    messages = [e for e in events if e.type == "message"]
    if len(messages) < 2:
        found.append(f"expected a message per turn, got {len(messages)}")
    complete = [e for e in events if e.type == "complete"]
    if complete and len(complete[0].data["result"]["transcript"]) != len(messages):
        found.append("the transcript in 'complete' does not match the messages sent")
    return found


CHECKS: dict[str, Callable[[StreamClient, bool], Awaitable[list[str]]]] = {
    "basic": check_basic, "specialist": check_specialist, "team": check_team}


async def run(url: str, names: list[str], *, quiet: bool, timeout: float, api_key: str | None = None) -> int:
    results: dict[str, list[str]] = {}
    async with StreamClient(url, timeout=timeout, api_key=api_key) as client:
        for name in names:
            print(f"== {name}", flush=True)
            try:
                results[name] = await CHECKS[name](client, quiet)
            except aiohttp.ClientConnectorError:
                print(f"cannot reach a rhetor_stream server at {url} (is it running?)", file=sys.stderr)
                return 2
            except (TimeoutError, StreamClientError, aiohttp.ClientError, KeyError, ValueError) as exc:
                results[name] = [f"{type(exc).__name__}: {exc}"]
    print("\nSummary")
    for name, found in results.items():
        print(f"  {'PASS' if not found else 'FAIL'} {name}")
        for problem in found:
            print(f"       - {problem}")
    failed = sum(1 for found in results.values() if found)
    print(f"{len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m rhetor_stream.check", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8003", help="server base URL (default: %(default)s)")
    parser.add_argument("--test", choices=[*CHECKS, "all"], default="all", help="which check to run (default: all)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds a stream may stay silent")
    parser.add_argument("--quiet", action="store_true", help="print only the summary")
    parser.add_argument("--api-key", default=os.environ.get("RHETOR_CHECK_API_KEY"),
                        help="API key of a server that needs one [env RHETOR_CHECK_API_KEY]")
    args = parser.parse_args(argv)
    names = list(CHECKS) if args.test == "all" else [args.test]
    raise SystemExit(asyncio.run(run(args.url, names, quiet=args.quiet, timeout=args.timeout,
                                     api_key=args.api_key)))


if __name__ == "__main__":
    main()
