"""The Python client against a real server (the aiohttp test server of the app)."""
from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient

from rhetor_stream.client import StreamClient, StreamClientError
from tests.conftest import MakeClient
from tests.proxy import CuttingProxy


def base(client: TestClient) -> str:
    return str(client.make_url("")).rstrip("/")


async def test_stream_process_tools_health(client: TestClient) -> None:
    async with StreamClient(base(client)) as api:
        events = [event async for event in api.stream("StreamText", {"text": "One. Two.", "delay_ms": 0})]
        assert [event.type for event in events] == ["connected", "chunk", "chunk", "complete", "disconnect"]
        assert events[1].data["content"]["content"] == "One. " and events[1].id.endswith("-2")
        assert await api.process("Echo", {"text": "hi"}) == {"text": "hi"}
        assert "Wait" in {tool["name"] for tool in await api.tools()}
        assert (await api.health())["status"] == "ok"


async def test_runs_and_resume(client: TestClient) -> None:
    async with StreamClient(base(client)) as api:
        run_id = await api.start_run("StreamText", {"text": "A. B. C. D.", "delay_ms": 10})
        everything = [event async for event in api.events(run_id)]
        tail = [event async for event in api.events(run_id, last_event_id=everything[2].id)]
        assert tail == everything[3:]


async def test_errors_carry_status_message_and_code(client: TestClient) -> None:
    async with StreamClient(base(client)) as api:
        with pytest.raises(StreamClientError) as caught:
            async for _ in api.stream("NoSuchTool"):
                pass
        assert caught.value.status == 404 and caught.value.code == "unknown_tool"
        assert "NoSuchTool" in caught.value.message
        with pytest.raises(StreamClientError) as caught:
            await api.process("Echo", {})
        assert caught.value.status == 400 and "'text'" in caught.value.message
        with pytest.raises(StreamClientError) as caught:
            await api.process("SendMessageToSpecialist", {"specialist_id": "nobody", "message": "x"})
        assert caught.value.code == "unknown_specialist"
        with pytest.raises(StreamClientError) as caught:
            async for _ in api.events("0" * 32):
                pass
        assert caught.value.status == 204


async def test_client_outside_context_manager_is_a_clear_error() -> None:
    with pytest.raises(RuntimeError, match="async with"):
        await StreamClient("http://127.0.0.1:1").tools()


async def test_a_resumable_stream_survives_a_cut_connection(make_client: MakeClient) -> None:
    server = await make_client(simulated_tokens_per_s=2000.0)
    text = " ".join(f"Sentence {n} of the answer." for n in range(1, 30))
    with CuttingProxy(server.server.port, cut_after=1500, target=b"POST /api/mcp/v2/stream ") as proxy:
        async with StreamClient(f"http://127.0.0.1:{proxy.port}") as api:
            events = [event async for event in api.stream("StreamText", {"text": text, "delay_ms": 5},
                                                          resume_grace_s=5)]
    assert proxy.cuts == 1
    numbers = [int(event.id.rsplit("-", 1)[1]) for event in events]
    assert numbers == list(range(1, len(events) + 1))  # every event once, in order, across the cut
    assert [event.type for event in events][-2:] == ["complete", "disconnect"]
    assert "".join(event.data["content"]["content"] for event in events if event.type == "chunk") == text


async def test_without_resume_a_cut_connection_is_an_error(make_client: MakeClient) -> None:
    server = await make_client()
    with CuttingProxy(server.server.port, cut_after=600, target=b"POST /api/mcp/v2/stream ") as proxy:
        async with StreamClient(f"http://127.0.0.1:{proxy.port}") as api:
            with pytest.raises(StreamClientError) as caught:
                async for _ in api.stream("StreamText", {"text": "One. " * 50, "delay_ms": 5}):
                    pass
    assert caught.value.code == "stream_cut" and "disconnect" in caught.value.message
