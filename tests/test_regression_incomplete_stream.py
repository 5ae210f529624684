"""Regression (issue 11, item 2): a stream cut short counted as a complete answer.

llama-cpp-python ends an in-flight stream when another request arrives and sends `data: [DONE]` with
no `finish_reason`; we reported `complete` with the truncated text and `stop_reason: null`, and in a
parallel team chat the turn showed up empty with no error flag. An answer counts only when it ends
the way its format ends a finished answer; otherwise `upstream_incomplete`, with the text that
arrived in `partial_content`.
"""
from __future__ import annotations

import aiohttp
import pytest

from rhetor_stream.providers import (
    AnthropicProvider,
    ChatMessage,
    ChatRequest,
    OllamaProvider,
    OpenAIProvider,
    UpstreamError,
)
from rhetor_stream.providers.base import HTTPProvider
from tests.conftest import MakeClient, post_stream
from tests.fake_upstream import FAST_HTTP, Upstream

REQUEST = ChatRequest((ChatMessage("user", "Hi"),), model="m1")
ARRIVED = "The riskiest part is"  # what the llama.cpp transcript sends before its bare [DONE]


async def test_done_without_finish_reason_is_incomplete(upstream: Upstream, session: aiohttp.ClientSession) -> None:
    upstream.replay("llamacpp-interrupted")
    stream = OpenAIProvider(session, base_url=upstream.url, http=FAST_HTTP).stream(REQUEST)
    received = []
    with pytest.raises(UpstreamError) as caught:
        async for delta in stream:
            received.append(delta)
    assert "".join(received) == ARRIVED
    assert caught.value.code == "upstream_incomplete" and "no finish_reason" in caught.value.message
    assert caught.value.details == {"partial_content": ARRIVED}


@pytest.mark.parametrize("make, raw, missing", [
    (AnthropicProvider,
     b'event: content_block_delta\ndata: {"type":"content_block_delta","delta":{"type":"text_delta","text":"Half"}}\n\n'
     b'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn"}}\n\n',
     "message_stop"),
    (OllamaProvider, b'{"message":{"content":"Half"},"done":false}\n', "done: true"),
    (OpenAIProvider, b'data: {"choices":[{"delta":{"content":"Half"},"finish_reason":null}]}\n\n', "[DONE]"),
])
async def test_a_stream_that_stops_early_is_incomplete(upstream: Upstream, session: aiohttp.ClientSession,
                                                       make: type[HTTPProvider], raw: bytes, missing: str) -> None:
    upstream.chunks = [raw]
    with pytest.raises(UpstreamError) as caught:
        async for _ in make(session, base_url=upstream.url, http=FAST_HTTP).stream(REQUEST):
            pass
    assert caught.value.code == "upstream_incomplete" and missing in caught.value.message
    assert caught.value.details == {"partial_content": "Half"}


async def test_the_client_gets_an_error_with_what_arrived(make_client: MakeClient, upstream: Upstream) -> None:
    client = await make_client(provider="openai", openai_base_url=upstream.url)
    upstream.replay("llamacpp-interrupted")
    events = await post_stream(client, "SendMessageToSpecialistStream", {"specialist_id": "planner", "message": "hi"})
    assert [event.event for event in events][-2:] == ["error", "disconnect"]
    error = events[-2].json()
    assert error["code"] == "upstream_incomplete" and error["partial_content"] == ARRIVED
    body = await (await client.post("/api/mcp/v2/process", json={
        "tool_name": "SendMessageToSpecialist", "arguments": {"specialist_id": "planner", "message": "hi"}})).json()
    assert not body["success"] and body["code"] == "upstream_incomplete" and body["partial_content"] == ARRIVED


async def test_a_cut_team_turn_is_flagged_failed(make_client: MakeClient, upstream: Upstream) -> None:
    client = await make_client(provider="openai", openai_base_url=upstream.url)
    upstream.replay("llamacpp-interrupted")
    events = await post_stream(client, "OrchestrateTeamChatStream",
                               {"topic": "t", "specialists": ["planner", "critic"], "rounds": 1, "mode": "parallel"})
    messages = [event.json() for event in events if event.event == "message"]
    assert len(messages) == 3  # two turns and the summary, each cut short
    for message in messages:
        assert message["code"] == "upstream_incomplete" and message["error"]
        assert message["content"] == "" and message["partial_content"] == ARRIVED
    assert events[-2].event == "complete"
