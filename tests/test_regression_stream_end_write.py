"""Regression: every stream ended with a write of its own for the end of the chunked body.

The batch that carries a run's `disconnect` was written, and then, on leaving the response's
`async with`, `write_eof()` sent the five bytes that end the body in a second send: one system call
more per stream, after the client already had every event (and ~10 us of CPU each on the machines
the benchmarks run on). The write that carries `disconnect` now ends the response itself.
"""
from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from rhetor_stream.web.streams import EventStreamResponse
from tests.conftest import eventually, post_stream


@pytest.fixture
def ends(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """The data of every `write_eof` that ends an event stream (aiohttp calls it again, with
    nothing, on responses already ended: those are not counted)."""
    seen: list[bytes] = []
    original = EventStreamResponse.write_eof

    async def write_eof(self: EventStreamResponse, data: bytes = b"") -> None:
        if self.prepared and not self._eof_sent:
            seen.append(bytes(data))
        await original(self, data)

    monkeypatch.setattr(EventStreamResponse, "write_eof", write_eof)
    return seen


@pytest.mark.parametrize("tool, arguments", [("Echo", {"text": "hi"}), ("StreamText", {"text": "a b c"})])
async def test_the_disconnect_goes_out_with_the_end_of_the_body(client: TestClient, ends: list[bytes], tool: str,
                                                                 arguments: dict[str, Any]) -> None:
    events = await post_stream(client, tool, arguments)
    assert events[-1].event == "disconnect"
    assert len(ends) == 1 and b"event: disconnect" in ends[0], ends


async def test_a_finished_run_read_again_ends_in_the_same_write(client: TestClient, ends: list[bytes]) -> None:
    async with client.post("/api/mcp/v2/runs", json={"tool_name": "Echo", "arguments": {"text": "hi"}}) as response:
        started = await response.json()

    async def finished() -> bool:
        async with client.get(started["status_url"]) as status:
            return (await status.json())["status"] == "complete"

    await eventually(finished, what="the detached Echo run to complete")
    async with client.get(started["events_url"]) as response:
        body = await response.read()
    assert b"event: disconnect" in body
    assert len(ends) == 1 and b"event: disconnect" in ends[0], ends

