"""Regression: one hostile request froze every client of the server.

`StreamText` with "." * 16000 blocked `/health` for ~11 s, one 1 MB word for ~30 s, and a
specialist message of 16,000 distinct words for ~12 s: the chunker and the simulated provider did
super-linear work on the event loop. Here a real server gets such requests (each within the 1 MiB
body limit) while `/health` is asked every 20 ms; its latency is compared with the same server's
latency when idle, measured in this test.
"""
from __future__ import annotations

import asyncio
import statistics
from collections.abc import Iterator
from typing import Any

import aiohttp
import orjson
import pytest

from tests.conftest import spawn_server, stop_server

TEXT_CHARS = 1_000_000  # with the JSON around it, just under the 1 MiB body limit
ATTACKS: list[dict[str, Any]] = [
    {"tool_name": "StreamText", "arguments": {"text": "." * TEXT_CHARS, "delay_ms": 0}},
    {"tool_name": "StreamText", "arguments": {"text": "A" * TEXT_CHARS, "delay_ms": 0}},
    {"tool_name": "StreamText", "arguments": {"text": "!?" * (TEXT_CHARS // 2), "delay_ms": 0},
     "stream_options": {"chunk_size": "word"}},
    # Half a million tiny deltas: each is cheap, but together they must still let the loop turn.
    {"tool_name": "StreamText", "arguments": {"text": ". " * (TEXT_CHARS // 2), "delay_ms": 0},
     "stream_options": {"chunk_size": "paragraph"}},
    # Three UTF-8 bytes a character: a third of the characters fill the body, and it keeps the
    # server busy for seconds (one chunk per sentence), so /health is measured while it works.
    {"tool_name": "StreamText", "arguments": {"text": "好。" * (TEXT_CHARS // 6), "delay_ms": 0}},
    {"tool_name": "SendMessageToSpecialistStream",
     "arguments": {"specialist_id": "planner",
                   "message": " ".join(f"term{index:05d}x" for index in range(16_000))}},
    # Every turn of a team chat reads the topic and all that was said before it.
    {"tool_name": "OrchestrateTeamChatStream", "arguments": {"topic": "Long" * (TEXT_CHARS // 4), "rounds": 10}},
]
HEALTH_TIMEOUT = 5.0
SAMPLES = 60


@pytest.fixture
def url() -> Iterator[str]:
    process, url = spawn_server("--heartbeat", "0", "--simulated-tokens-per-s", "2000")
    yield url
    stop_server(process)


async def _health(session: aiohttp.ClientSession, url: str) -> tuple[float, int]:
    """Seconds `/health` took to answer, and its `active_tools`."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        async with session.get(f"{url}/health", timeout=aiohttp.ClientTimeout(total=HEALTH_TIMEOUT)) as response:
            body = await response.json()
    except TimeoutError:
        pytest.fail(f"/health gave no answer within {HEALTH_TIMEOUT} s")
    return loop.time() - started, body["active_tools"]


async def _latencies(session: aiohttp.ClientSession, url: str, count: int) -> tuple[list[float], list[int]]:
    latencies, active = [], []
    for _ in range(count):
        latency, tools = await _health(session, url)
        latencies.append(latency)
        active.append(tools)
        await asyncio.sleep(0.02)
    return latencies, active


async def _attack(session: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> None:
    """Send one request and read its stream as fast as it comes, so nothing holds the run back."""
    async with session.post(f"{url}/api/mcp/v2/stream", data=orjson.dumps(body),
                            headers={"Content-Type": "application/json"}) as response:
        assert response.status == 200, await response.text()
        async for _ in response.content.iter_any():
            pass


async def test_health_keeps_answering_during_hostile_requests(url: str) -> None:
    async with aiohttp.ClientSession() as health, aiohttp.ClientSession() as attackers:
        await _latencies(health, url, 5)  # warm up: connection, first requests
        idle, _ = await _latencies(health, url, 20)
        attacks = [asyncio.create_task(_attack(attackers, url, body)) for body in ATTACKS]
        try:
            busy, active = await _latencies(health, url, SAMPLES)
        finally:
            for attack in attacks:
                attack.cancel()
            await asyncio.gather(*attacks, return_exceptions=True)
        for attack in attacks:
            if attack.done() and not attack.cancelled() and attack.exception() is not None:
                raise attack.exception()  # type: ignore[misc]
    # The attack was running while /health was measured, not over before it.
    assert sum(tools > 0 for tools in active) >= SAMPLES // 2, active
    # Generous bounds, far from a busy machine's noise and far below the seconds it used to be.
    assert statistics.median(busy) <= statistics.median(idle) + 0.1, (idle, busy)
    assert max(busy) <= max(idle) + 1.0, (idle, busy)
