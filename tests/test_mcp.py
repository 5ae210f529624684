"""/mcp over raw HTTP: the JSON-RPC surface, sessions, the transport's error cases, streaming tool
calls with progress, resuming after Last-Event-ID, the resume grace and cancellation."""
from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from rhetor_stream.sse.parser import ServerSentEvent
from rhetor_stream.web.state import STATE
from tests.conftest import BOTH, MakeClient, Mcp, eventually, read_events, request

TEXT = " ".join(f"Sentence number {n} is here." for n in range(1, 11))


def messages(events: list[ServerSentEvent]) -> list[dict[str, Any]]:
    return [json.loads(event.data) for event in events if event.data]


def progress_texts(events: list[ServerSentEvent]) -> list[str]:
    return [message["params"]["message"] for message in messages(events)
            if message.get("method") == "notifications/progress"]


# --- lifecycle and the JSON-RPC surface ---------------------------------------------------------------

async def test_initialize_negotiates_the_version_and_issues_a_session(client: TestClient) -> None:
    session = Mcp(client)
    body = await session.initialize("2025-06-18")
    assert body["id"] == 0
    result = body["result"]
    assert result["protocolVersion"] == "2025-06-18"
    assert set(result["capabilities"]) == {"tools", "logging"}
    assert result["serverInfo"]["name"] == "rhetor_stream"
    assert session.session_id.isascii() and session.session_id.isprintable()
    newest = Mcp(client)
    assert (await newest.initialize("1999-01-01"))["result"]["protocolVersion"] == "2025-11-25"
    assert (await newest.call("ping")) == {"jsonrpc": "2.0", "id": 1, "result": {}}


async def test_tools_list_shows_the_registry_as_the_rest_api_does(client: TestClient, mcp: Mcp) -> None:
    listed = (await mcp.call("tools/list"))["result"]["tools"]
    rest = await (await client.get("/api/mcp/v2/tools")).json()
    assert [(tool["name"], tool["description"], tool["inputSchema"]) for tool in listed] == \
        [(tool["name"], tool["description"], tool["input_schema"]) for tool in rest]


async def test_method_errors_are_json_rpc_errors_with_their_codes(mcp: Mcp) -> None:
    unknown = await mcp.call("resources/list")
    assert unknown["error"]["code"] == -32601 and "resources/list" in unknown["error"]["message"]
    bad_level = await mcp.call("logging/setLevel", {"level": "loud"})
    assert bad_level["error"]["code"] == -32602 and "loud" in bad_level["error"]["message"]
    assert (await mcp.call("logging/setLevel", {"level": "warning"}))["result"] == {}
    unknown_tool = await mcp.call("tools/call", {"name": "Nope", "arguments": {}})
    assert unknown_tool["error"]["code"] == -32602 and "Nope" in unknown_tool["error"]["message"]
    response = await mcp.client.post("/mcp", json={"jsonrpc": "2.0", "id": 5, "method": "ping", "params": [1]},
                                     headers=mcp.headers())
    assert (await response.json())["error"]["code"] == -32602


@pytest.mark.parametrize("body, code", [
    (b"{not json", -32700),
    (b'{"id": 1, "method": "ping"}', -32600),
    (b'{"jsonrpc": "2.0", "id": {"a": 1}, "method": "ping"}', -32600),
    (b'{"jsonrpc": "2.0", "id": 1}', -32600),
    (b'"ping"', -32600),
])
async def test_malformed_json_rpc_is_a_400_with_a_json_rpc_error(mcp: Mcp, body: bytes, code: int) -> None:
    response = await mcp.client.post("/mcp", data=body, headers={**mcp.headers(), "Content-Type": "application/json"})
    assert response.status == 400
    error = (await response.json())["error"]
    assert error["code"] == code and error["message"]


async def test_notifications_and_responses_are_accepted_with_202(mcp: Mcp) -> None:
    for body in ({"jsonrpc": "2.0", "method": "notifications/initialized"},
                 {"jsonrpc": "2.0", "id": 7, "result": {}}):
        response = await mcp.client.post("/mcp", json=body, headers=mcp.headers())
        assert response.status == 202 and await response.read() == b""


async def test_batches_only_where_the_version_has_them(client: TestClient) -> None:
    old = Mcp(client)
    await old.initialize("2025-03-26")
    batch = [request(1, "ping"), {"jsonrpc": "2.0", "method": "notifications/initialized"},
             request(2, "tools/call", {"name": "Echo", "arguments": {"text": "b"}}), request(3, "nope")]
    response = await client.post("/mcp", json=batch, headers=old.headers())
    answers = await response.json()
    assert [answer["id"] for answer in answers] == [1, 2, 3]
    assert answers[1]["result"]["structuredContent"] == {"text": "b"}
    assert answers[2]["error"]["code"] == -32601
    new = Mcp(client)
    await new.initialize()
    response = await client.post("/mcp", json=[request(1, "ping")], headers=new.headers())
    assert response.status == 400 and "batch" in (await response.json())["error"]["message"]


# --- transport errors ---------------------------------------------------------------------------------

async def test_sessions_are_required_checked_and_ended(client: TestClient, mcp: Mcp) -> None:
    response = await client.post("/mcp", json=request(1, "ping"), headers={"Accept": BOTH})
    assert response.status == 400 and "Mcp-Session-Id" in (await response.json())["error"]["message"]
    forged = mcp.session_id[:-3] + ("AAA" if not mcp.session_id.endswith("AAA") else "BBB")
    for session_id in ("nope", forged):
        response = await client.post("/mcp", json=request(1, "ping"),
                                     headers={"Accept": BOTH, "Mcp-Session-Id": session_id})
        assert response.status == 404
        assert (await response.json())["error"]["code"] == -32600
    assert (await client.delete("/mcp", headers=mcp.headers())).status == 204
    response = await client.post("/mcp", json=request(1, "ping"), headers=mcp.headers())
    assert response.status == 404
    assert (await client.delete("/mcp", headers=mcp.headers())).status == 404


async def test_an_expired_session_is_unknown(make_client: MakeClient) -> None:
    client = await make_client(capability_ttl=0.001)
    session = Mcp(client)
    await session.initialize()
    await asyncio.sleep(1.1)  # the expiry has a resolution of one second
    response = await client.post("/mcp", json=request(1, "ping"), headers=session.headers())
    assert response.status == 404


async def test_the_protocol_version_header_is_checked(mcp: Mcp) -> None:
    for version, problem, code in (("2031-01-01", "unsupported", -32022), ("2025-06-18", "differs", -32600)):
        response = await mcp.client.post("/mcp", json=request(1, "ping"),
                                         headers=mcp.headers(**{"MCP-Protocol-Version": version}))
        assert response.status == 400
        error = (await response.json())["error"]
        assert problem in error["message"] and error["code"] == code
    # A 2026-07-28 client's probe learns which versions are served (and falls back to initialize).
    response = await mcp.client.post("/mcp", json=request(1, "server/discover"),
                                     headers={"Accept": BOTH, "MCP-Protocol-Version": "2026-07-28"})
    error = (await response.json())["error"]
    assert error["data"] == {"supported": ["2025-11-25", "2025-06-18", "2025-03-26"], "requested": "2026-07-28"}


async def test_accept_and_content_type_are_checked(mcp: Mcp) -> None:
    response = await mcp.client.post("/mcp", json=request(1, "ping"), headers=mcp.headers("text/html"))
    assert response.status == 406
    response = await mcp.client.post("/mcp", data=b"{}", headers={**mcp.headers(), "Content-Type": "text/plain"})
    assert response.status == 415
    response = await mcp.client.get("/mcp", headers=mcp.headers("application/json"))
    assert response.status == 406
    response = await mcp.client.post("/mcp", json=request(1, "ping"),
                                     headers=mcp.headers("application/json;q=0, text/html"))
    assert response.status == 406
    # A client that takes only event streams gets even a ping as one.
    response = await mcp.client.post("/mcp", json=request(1, "ping"), headers=mcp.headers("text/event-stream"))
    assert response.content_type == "text/event-stream"
    assert messages(await read_events(response)) == [{"jsonrpc": "2.0", "id": 1, "result": {}}]


async def test_get_without_last_event_id_is_405_and_a_bad_id_400(mcp: Mcp) -> None:
    response = await mcp.client.get("/mcp", headers=mcp.headers("text/event-stream"))
    assert response.status == 405 and "GET" not in response.headers["Allow"]
    for bad in ("17", "abc.def-1", "0123abcd.WyJ4Il0-x"):
        response = await mcp.client.get("/mcp", headers=mcp.headers("text/event-stream", **{"Last-Event-ID": bad}))
        assert response.status == 400, bad


# --- tools/call ---------------------------------------------------------------------------------------

async def test_a_tool_result_is_text_plus_structured_content(mcp: Mcp) -> None:
    body = await mcp.call("tools/call", {"name": "Echo", "arguments": {"text": "hi"}})
    assert body["result"] == {"content": [{"type": "text", "text": '{"text":"hi"}'}], "isError": False,
                              "structuredContent": {"text": "hi"}}


async def test_bad_arguments_are_an_error_result(mcp: Mcp) -> None:
    body = await mcp.call("tools/call", {"name": "Wait", "arguments": {"seconds": -1}})
    result = body["result"]
    assert result["isError"] is True
    assert "seconds" in result["content"][0]["text"]
    assert result["structuredContent"]["argument"] == "seconds"


async def test_a_streaming_call_sends_every_chunk_as_progress_in_order_then_the_result(mcp: Mcp) -> None:
    events = await mcp.stream("StreamText", {"text": TEXT, "delay_ms": 0})
    assert "".join(progress_texts(events)) == TEXT
    prefix = events[0].id.rpartition("-")[0]
    assert [event.id for event in events] == [f"{prefix}-{n}" for n in range(1, len(events) + 1)]
    assert events[0].data == "" and events[0].retry is not None  # the priming event
    final = messages(events)[-1]
    assert final["id"] == mcp.next_id and final["result"]["structuredContent"]["chunks"] == 10
    progress = [message["params"]["progress"] for message in messages(events)[:-1]]
    assert progress == sorted(set(progress))
    assert {message["params"]["progressToken"] for message in messages(events)[:-1]} == {"p"}


async def test_without_a_progress_token_only_the_result_has_data(mcp: Mcp) -> None:
    events = await mcp.stream("StreamText", {"text": TEXT, "delay_ms": 0}, token=None)
    assert [message.get("id") for message in messages(events)] == [mcp.next_id]


async def test_a_plain_tool_reports_its_progress(mcp: Mcp) -> None:
    events = await mcp.stream("Wait", {"seconds": 0.5})
    texts = progress_texts(events)
    assert texts[0].startswith("0% Starting Wait") and texts[-1].startswith("100%")
    assert messages(events)[-1]["result"]["structuredContent"] == {"waited": 0.5}


async def test_resume_after_a_cut_gets_exactly_the_rest(mcp: Mcp) -> None:
    first = await mcp.stream("StreamText", {"text": TEXT, "delay_ms": 20}, limit=4)
    rest = await mcp.resume(first[-1].id)
    events = first + rest
    prefix = first[0].id.rpartition("-")[0]
    assert [event.id for event in events] == [f"{prefix}-{n}" for n in range(1, len(events) + 1)]
    assert "".join(progress_texts(events)) == TEXT
    assert messages(events)[-1]["result"]["isError"] is False
    # Once more from the middle, after the call ended: the log answers, the same bytes again.
    again = await mcp.resume(first[1].id)
    assert [event.data for event in again] == [event.data for event in events[2:]]


async def test_a_stream_of_another_session_is_refused(client: TestClient, mcp: Mcp) -> None:
    events = await mcp.stream("Echo", {"text": "mine"})
    other = Mcp(client)
    await other.initialize()
    response = await client.get("/mcp", headers=other.headers("text/event-stream",
                                                              **{"Last-Event-ID": events[0].id}))
    assert response.status == 404


async def test_a_disconnect_waits_for_the_client_then_cancels(make_client: MakeClient) -> None:
    client = await make_client(mcp_resume_grace=60)
    state = client.server.app[STATE]
    mcp = Mcp(client)
    await mcp.initialize()
    first = await mcp.stream("Wait", {"seconds": 30}, limit=2)

    async def gone() -> bool:
        return state.activity.active_streams == 0

    await eventually(gone, what="the cut stream noticed")
    assert state.activity.active_tools == 1  # the run waits for its client
    resumed = asyncio.ensure_future(mcp.resume(first[-1].id))

    async def back() -> bool:
        return state.activity.active_streams == 1

    await eventually(back, what="the client resumed")
    response = await client.post("/mcp", json={"jsonrpc": "2.0", "method": "notifications/cancelled",
                                               "params": {"requestId": mcp.next_id, "reason": "enough"}},
                                 headers=mcp.headers())
    assert response.status == 202
    rest = await asyncio.wait_for(resumed, 10)
    final = messages(rest)[-1]
    assert final["id"] == mcp.next_id and final["result"]["isError"] is True
    assert final["result"]["structuredContent"]["code"] == "cancelled"
    assert state.activity.active_tools == 0


async def test_after_the_grace_a_vanished_client_s_call_is_cancelled(make_client: MakeClient) -> None:
    client = await make_client(mcp_resume_grace=0.2)
    state = client.server.app[STATE]
    mcp = Mcp(client)
    await mcp.initialize()
    await mcp.stream("Wait", {"seconds": 30}, limit=2)

    async def cancelled() -> bool:
        return state.activity.active_tools == 0

    await eventually(cancelled, what="the call cancelled after the grace")


async def test_deleting_the_session_cancels_its_calls(client: TestClient, mcp: Mcp) -> None:
    state = client.server.app[STATE]
    call = asyncio.ensure_future(mcp.stream("Wait", {"seconds": 30}))

    async def running() -> bool:
        return state.activity.active_tools == 1

    await eventually(running, what="the call started")
    assert (await client.delete("/mcp", headers=mcp.headers())).status == 204
    events = await asyncio.wait_for(call, 10)
    assert messages(events)[-1]["result"]["isError"] is True
    assert state.activity.active_tools == 0


async def test_mcp_needs_the_api_key_and_a_trusted_origin(make_client: MakeClient) -> None:
    client = await make_client(api_key=("k" * 32,))
    body = request(0, "initialize", {"protocolVersion": "2025-11-25", "capabilities": {},
                                     "clientInfo": {"name": "t", "version": "1"}})
    response = await client.post("/mcp", json=body, headers={"Accept": BOTH})
    assert response.status == 401 and response.headers["WWW-Authenticate"].startswith("Bearer")
    keyed = {"Accept": BOTH, "Authorization": "Bearer " + "k" * 32}
    response = await client.post("/mcp", json=body, headers={**keyed, "Origin": "https://evil.example"})
    assert response.status == 403
    response = await client.post("/mcp", json=body, headers=keyed)
    assert response.status == 200 and response.headers["Mcp-Session-Id"]


async def _a_running_wait_call(client: TestClient) -> tuple[Mcp, asyncio.Future[list[ServerSentEvent]]]:
    """A session on `client` and a `Wait(30)` call of it that has started."""
    state = client.server.app[STATE]
    mcp = Mcp(client)
    await mcp.initialize()
    call = asyncio.ensure_future(mcp.stream("Wait", {"seconds": 30}))

    async def running() -> bool:
        return state.activity.active_tools == 1

    await eventually(running, what="the call started")
    return mcp, call


async def test_only_tool_calls_count_against_a_key_s_run_limit(make_client: MakeClient) -> None:
    mcp, call = await _a_running_wait_call(await make_client(key_max_concurrent_runs=1))
    client = mcp.client
    refused = (await mcp.call("tools/call", {"name": "Echo", "arguments": {"text": "x"}}))["result"]
    assert refused["isError"] is True and refused["structuredContent"]["code"] == "rate_limited"
    assert (await mcp.call("ping"))["result"] == {}
    response = await client.post("/mcp", json={"jsonrpc": "2.0", "method": "notifications/cancelled",
                                               "params": {"requestId": 1}}, headers=mcp.headers())
    assert response.status == 202
    await asyncio.wait_for(call, 10)
    assert (await mcp.call("tools/call", {"name": "Echo", "arguments": {"text": "y"}}))["result"]["isError"] is False


async def test_a_request_id_is_used_once_per_session(client: TestClient, mcp: Mcp) -> None:
    call = request(9, "tools/call", {"name": "Echo", "arguments": {"text": "once"}})
    first = await (await client.post("/mcp", json=call, headers=mcp.headers("application/json"))).json()
    assert first["result"]["structuredContent"] == {"text": "once"}
    again = await (await client.post("/mcp", json=call, headers=mcp.headers("application/json"))).json()
    assert again["error"]["code"] == -32600 and "already used" in again["error"]["message"]
    other = Mcp(client)  # another session may use the same id
    await other.initialize()
    response = await client.post("/mcp", json=call, headers=other.headers("application/json"))
    assert (await response.json())["result"]["isError"] is False


async def test_mcp_streams_count_against_the_stream_limit(make_client: MakeClient) -> None:
    mcp, call = await _a_running_wait_call(await make_client(max_streams=1))
    client = mcp.client
    response = await client.post("/mcp", json=request(50, "ping"), headers=mcp.headers())
    assert response.status == 503 and response.headers["Retry-After"]
    assert (await client.delete("/mcp", headers=mcp.headers())).status == 204  # DELETE is not a stream
    await asyncio.wait_for(call, 10)
