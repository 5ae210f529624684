"""Specialists end to end through the server: roster, memory, streaming answers, upstream failures,
and the promise that a client leaving closes the upstream request at once."""
from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

from rhetor_stream.settings import PROVIDERS
from rhetor_stream.specialists import RosterError, load_roster
from rhetor_stream.specialists.memory import ConversationMemory
from rhetor_stream.sse.parser import SSEParser
from tests.conftest import MakeClient, eventually, post_stream
from tests.fake_upstream import Upstream


def test_default_roster() -> None:
    roster = load_roster(None, PROVIDERS)
    assert "rhetor-orchestrator" in roster and len(roster) >= 5
    assert len({specialist.role for specialist in roster.values()}) == len(roster)


@pytest.mark.parametrize("name, text, mentions", [
    ("bad.toml", "[[specialist]]\nid = 'a'\nname = \n", "line 3"),
    ("missing.toml", "[[specialist]]\nid = 'a'\nname = 'A'\nrole = 'r'\ndescription = 'd'\n", "'system_prompt'"),
    ("unknown.json", json.dumps([{"id": "a", "name": "A", "role": "r", "description": "d",
                                  "system_prompt": "s", "colour": "red"}]), "'colour'"),
    ("provider.json", json.dumps({"specialist": [{"id": "a", "name": "A", "role": "r", "description": "d",
                                                  "system_prompt": "s", "provider": "magic"}]}), "'provider'"),
    ("broken.json", '[{"id": "a",\n  oops}]', "line 2"),
    ("empty.toml", "", "expected a list of specialists"),
])
def test_bad_roster_files_are_named(tmp_path: Path, name: str, text: str, mentions: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(RosterError) as caught:
        load_roster(path, PROVIDERS)
    assert str(path) in str(caught.value) and mentions in str(caught.value)


def test_memory_is_bounded() -> None:
    memory = ConversationMemory(max_turns=4, max_chars=1000, max_conversations=2)
    for index in range(5):
        memory.remember("s", "c", f"q{index}", f"a{index}")
    assert [message.content for message in memory.history("s", "c")] == ["q3", "a3", "q4", "a4"]
    memory.remember("s", "d", "q", "a")
    memory.remember("s", "e", "q", "a")
    assert memory.history("s", "c") == []  # the least recently used conversation was forgotten
    assert memory.history("s", None) == []


async def test_list_specialists(client: TestClient) -> None:
    body = await (await client.post("/api/mcp/v2/process", json={"tool_name": "ListSpecialists"})).json()
    specialists = {entry["id"]: entry for entry in body["result"]}
    assert specialists["code-reviewer"]["provider"] == "simulated"
    assert "system_prompt" not in specialists["code-reviewer"]


async def test_streamed_answer_in_sentences(client: TestClient) -> None:
    events = await post_stream(client, "SendMessageToSpecialistStream",
                               {"specialist_id": "planner", "message": "Plan the database migration",
                                "message_type": "planning"}, chunk_size="sentence")
    chunks = [event.json()["content"] for event in events if event.event == "chunk"]
    assert len(chunks) > 3 and all(chunk["specialist"] == "planner" for chunk in chunks)
    complete = events[-2].json()["result"]
    assert "".join(chunk["content"] for chunk in chunks) == complete["content"]
    assert "Simulated provider" in complete["content"] and "migration" in complete["content"]
    assert complete["model"] == "simulated-1" and complete["usage"]["output_tokens"] > 0
    stages = [event.json()["stage"] for event in events if event.event == "progress"]
    assert stages[0] == "waiting_for_model" and stages[-1] == "finalizing"


async def test_conversation_memory_reaches_the_model(make_client: MakeClient, upstream: Upstream) -> None:
    client = await make_client(provider="openai", openai_base_url=upstream.url, openai_api_key="k")
    upstream.chunks = [b'data: {"choices":[{"delta":{"content":"Noted."},"finish_reason":"stop"}]}\n\n'
                       b'data: [DONE]\n\n']
    for message in ("My name is Zoe.", "What is my name?"):
        body = await (await client.post("/api/mcp/v2/process", json={
            "tool_name": "SendMessageToSpecialist",
            "arguments": {"specialist_id": "researcher", "message": message, "conversation_id": "c1"}})).json()
        assert body["success"], body
    contents = [message["content"] for message in upstream.requests[1]["messages"]]
    assert contents[1:] == ["My name is Zoe.", "Noted.", "What is my name?"]


@pytest.mark.parametrize("tool, arguments, argument", [
    ("SendMessageToSpecialistStream", {"specialist_id": "nobody", "message": "hi"}, "specialist_id"),
    ("SendMessageToSpecialist", {"specialist_id": "nobody", "message": "hi"}, "specialist_id"),
    ("OrchestrateTeamChatStream", {"topic": "t", "specialists": ["planner", "nobody"]}, "specialists"),
])
async def test_unknown_specialist_is_refused_before_the_stream(client: TestClient, tool: str,
                                                               arguments: dict[str, object], argument: str) -> None:
    response = await client.post("/api/mcp/v2/stream", json={"tool_name": tool, "arguments": arguments})
    body = await response.json()
    assert response.status == 400 and body["code"] == "unknown_specialist" and body["argument"] == argument
    assert "'nobody'" in body["error"] and "planner" in body["error"]  # names the typo and what exists


async def test_a_team_of_nobody_is_refused_before_the_stream(client: TestClient) -> None:
    response = await client.post("/api/mcp/v2/stream", json={"tool_name": "OrchestrateTeamChatStream",
                                                             "arguments": {"topic": "t", "specialists": []}})
    body = await response.json()
    assert response.status == 400 and body["argument"] == "specialists" and "at least 1" in body["error"]


async def test_upstream_error_becomes_an_error_event(make_client: MakeClient, upstream: Upstream) -> None:
    client = await make_client(provider="openai", openai_base_url=upstream.url, openai_api_key="sk-hidden")
    upstream.status = 401
    events = await post_stream(client, "SendMessageToSpecialistStream", {"specialist_id": "critic", "message": "hi"})
    error = events[-2].json()
    assert error["code"] == "upstream_auth" and "OPENAI_API_KEY" in error["error"]
    assert "sk-hidden" not in json.dumps([event.data for event in events])


async def test_client_leaving_closes_the_upstream_within_200ms(make_client: MakeClient, upstream: Upstream) -> None:
    client = await make_client(provider="openai", openai_base_url=upstream.url, openai_api_key="k")
    upstream.forever = b'data: {"choices":[{"delta":{"content":"More words. "}}]}\n\n'
    response = await client.post("/api/mcp/v2/stream", json={
        "tool_name": "SendMessageToSpecialistStream",
        "arguments": {"specialist_id": "researcher", "message": "Go on forever"}})
    parser = SSEParser()
    async for data in response.content.iter_any():
        if any(event.event == "chunk" for event in parser.feed(data)):
            break
    loop = asyncio.get_running_loop()
    left_at = loop.time()
    response.close()
    await eventually(upstream.was_closed, what="the upstream request was closed")
    assert upstream.closed_at is not None and upstream.closed_at - left_at < 0.2
