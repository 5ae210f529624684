"""Several server processes sharing one Redis: resume a run on another process, cancel across
processes, and `--workers N` on one port."""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import aiohttp
import pytest

from tests.conftest import ROOT, first_events, free_port, spawn_server, stop_server

TEXT = " ".join(f"Point {n} matters here." for n in range(1, 16))

StartServer = Callable[..., str]


@pytest.fixture
def start_server() -> Iterator[StartServer]:
    """`start_server("--event-store", url)`: a real server process; returns its base URL."""
    processes: list[subprocess.Popen[str]] = []

    def start(*args: str) -> str:
        process, url = spawn_server("--log-level", "warning", "--disconnect-poll", "0.02", *args)
        processes.append(process)
        return url

    yield start
    for process in processes:
        stop_server(process)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def test_start_on_a_resume_on_b(start_server: StartServer, redis_url: str,
                                      http: aiohttp.ClientSession) -> None:
    a = start_server("--event-store", redis_url)
    b = start_server("--event-store", redis_url)
    body: dict[str, Any] = {"tool_name": "StreamText", "arguments": {"text": TEXT, "delay_ms": 25},
                            "stream_options": {"resume_grace_s": 10}}
    async with http.post(f"{a}/api/mcp/v2/stream", json=body) as response:
        first = await first_events(response, limit=4)  # then the connection drops
    run_id = first[0].json()["run_id"]
    async with http.get(f"{b}/api/mcp/v2/runs/{run_id}/events",
                        headers={"Last-Event-ID": first[-1].id}) as response:
        assert response.status == 200
        rest = await first_events(response)
    events = first + rest
    assert [int(event.id.rsplit("-", 1)[1]) for event in events] == list(range(1, len(events) + 1))
    assert [event.event for event in events][-2:] == ["complete", "disconnect"]
    assert "".join(event.json()["content"]["content"] for event in events if event.event == "chunk") == TEXT


async def test_cancel_through_b_stops_the_run_on_a(start_server: StartServer, redis_url: str,
                                                   http: aiohttp.ClientSession) -> None:
    a = start_server("--event-store", redis_url)
    b = start_server("--event-store", redis_url)
    async with http.post(f"{a}/api/mcp/v2/runs", json={"tool_name": "Wait", "arguments": {"seconds": 60}}) as r:
        run_id = (await r.json())["run_id"]
    await _until_active_tools(http, a, 1)
    async with http.delete(f"{b}/api/mcp/v2/runs/{run_id}") as response:
        assert response.status == 202
    await _until_active_tools(http, a, 0)
    async with http.get(f"{b}/api/mcp/v2/runs/{run_id}/events") as response:
        events = await first_events(response)
    assert events[-2].event == "error" and events[-2].json()["code"] == "cancelled"
    async with http.get(f"{b}/api/mcp/v2/runs/{run_id}") as response:
        assert (await response.json())["status"] == "cancelled"


async def test_a_run_whose_process_died_ends_as_lost(start_server: StartServer, redis_url: str,
                                                     http: aiohttp.ClientSession) -> None:
    process, a = spawn_server("--log-level", "warning", "--event-store", redis_url, "--run-owner-lease", "0.5")
    try:
        b = start_server("--event-store", redis_url)
        async with http.post(f"{a}/api/mcp/v2/runs", json={"tool_name": "Wait", "arguments": {"seconds": 60}}) as r:
            run_id = (await r.json())["run_id"]
        async with http.get(f"{b}/api/mcp/v2/runs/{run_id}/events") as response:
            first = await first_events(response, limit=1)
        async with http.get(f"{b}/api/mcp/v2/runs/{run_id}") as response:
            assert (await response.json())["status"] == "running"  # A renews its lease: not lost
        process.kill()  # no shutdown: the run is left "running" in Redis
        async with http.get(f"{b}/api/mcp/v2/runs/{run_id}/events",
                            headers={"Last-Event-ID": first[0].id}) as response:
            rest = await asyncio.wait_for(first_events(response), 15)  # B notices once A's lease runs out
    finally:
        stop_server(process)
    assert [event.event for event in rest][-2:] == ["error", "disconnect"]
    assert rest[-2].json()["code"] == "run_lost" and "Wait" in rest[-2].json()["error"]
    ids = [int(event.id.rsplit("-", 1)[1]) for event in first + rest]
    assert ids == list(range(1, len(ids) + 1))
    async with http.get(f"{b}/api/mcp/v2/runs/{run_id}") as response:
        assert (await response.json())["status"] == "error"
    async with http.delete(f"{b}/api/mcp/v2/runs/{run_id}") as response:
        assert response.status == 409


async def _until_active_tools(http: aiohttp.ClientSession, base: str, count: int) -> None:
    for _ in range(500):
        async with http.get(f"{base}/health") as response:
            if (await response.json())["active_tools"] == count:
                return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{base} never showed active_tools={count}")


async def _worker_pids(base: str, tries: int = 40) -> set[int]:
    pids = set()
    for _ in range(tries):  # new connections are spread over the workers by the kernel
        async with aiohttp.ClientSession() as fresh, fresh.get(f"{base}/health") as response:
            pids.add((await response.json())["pid"])
    return pids


async def test_workers_share_one_port(start_server: StartServer, redis_url: str,
                                      http: aiohttp.ClientSession) -> None:
    base = start_server("--event-store", redis_url, "--workers", "2")
    assert len(await _worker_pids(base)) == 2
    async with http.get(f"{base}/api/mcp/v2/stream/test?count=1&interval_ms=0") as response:
        assert [event.event for event in await first_events(response)][-1] == "disconnect"


async def test_a_killed_worker_is_replaced(start_server: StartServer, redis_url: str) -> None:
    base = start_server("--event-store", redis_url, "--workers", "2")
    first = await _worker_pids(base)
    assert len(first) == 2
    victim = min(first)
    os.kill(victim, signal.SIGKILL)
    seen: set[int] = set()
    for _ in range(100):
        try:
            seen |= await _worker_pids(base, tries=10)
        except aiohttp.ClientError:
            pass  # a connection the dying worker had accepted
        if len(seen - first) == 1 and len(seen & first) == 1:
            break
        await asyncio.sleep(0.1)
    assert victim not in await _worker_pids(base) and len(seen - first) == 1, seen


def test_workers_refuse_the_memory_store() -> None:
    result = subprocess.run([sys.executable, "-m", "rhetor_stream", "--workers", "2"], cwd=ROOT,
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and "--event-store redis://" in result.stderr
    assert "Traceback" not in result.stderr


def test_workers_that_cannot_start_stop_the_server() -> None:
    unreachable = f"redis://127.0.0.1:{free_port()}/0"
    result = subprocess.run([sys.executable, "-m", "rhetor_stream", "--port", "0", "--workers", "2",
                             "--event-store", unreachable], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "cannot reach the redis event store" in result.stderr
    assert "replacement" not in result.stderr and "Traceback" not in result.stderr
