"""Bounded fuzzing of /mcp: whatever JSON (or not) a client sends, the answer is a JSON-RPC message or
an empty 202, never a 500, a traceback or a hang."""
from __future__ import annotations

import json
import random
from typing import Any

from aiohttp.test_utils import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from rhetor_stream.mcp import protocol
from rhetor_stream.web.app import served_tools
from tests.conftest import Mcp

METHODS = ["initialize", "ping", "tools/list", "tools/call", "logging/setLevel", "notifications/cancelled",
           "notifications/initialized", "resources/list", "", "tools/call/x"]
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                    max_leaves=12)
MESSAGES = st.fixed_dictionaries({}, optional={
    "jsonrpc": st.sampled_from(["2.0", "1.0", 2]) | JSON,
    "id": st.integers() | st.text(max_size=10) | JSON,
    "method": st.sampled_from(METHODS) | JSON,
    "params": st.fixed_dictionaries({}, optional={
        "name": st.sampled_from(["Echo", "Wait", "Nope"]) | JSON,
        "arguments": st.fixed_dictionaries({}, optional={"text": JSON, "seconds": JSON}) | JSON,
        "_meta": st.fixed_dictionaries({}, optional={"progressToken": JSON}) | JSON,
        "protocolVersion": st.sampled_from(protocol.VERSIONS) | JSON,
        "level": st.sampled_from(protocol.LOG_LEVELS) | JSON,
        "requestId": JSON}) | JSON,
    "result": JSON, "error": JSON})


TOOLS = served_tools()


def _is_answer(body: Any) -> bool:
    return isinstance(body, dict) and body.get("jsonrpc") == "2.0" and "id" in body and \
        (("result" in body) != ("error" in body))


@settings(max_examples=300, deadline=None)
@given(MESSAGES | JSON)
def test_the_json_rpc_core_answers_anything(raw: Any) -> None:
    try:
        message = protocol.parse(raw)
    except protocol.RpcError as exc:
        assert _is_answer(exc.response())
        return
    if not message.is_request:
        return
    if message.method == "initialize":
        try:
            protocol.initialize(message)
        except protocol.RpcError as exc:
            assert _is_answer(exc.response())
    elif message.method == "tools/call":
        checked = protocol.check_call(message, TOOLS, None)
        assert isinstance(checked, protocol.ToolCall) or _is_answer(checked)
    else:
        assert _is_answer(protocol.answer(message, TOOLS))


async def test_random_bodies_over_http_get_json_rpc_answers(client: TestClient) -> None:
    mcp = Mcp(client)
    await mcp.initialize()
    rng = random.Random(14)
    bodies: list[bytes] = [b"", b"[]", b"{", b"\xff\xfe", b"null", b"[1, 2]", b'{"jsonrpc": "2.0"}']
    for _ in range(150):
        message: dict[str, Any] = {"jsonrpc": rng.choice(["2.0", "2.0", "1"]), "method": rng.choice(METHODS)}
        if rng.random() < 0.8:
            message["id"] = rng.choice([rng.randint(-5, 10**6), "x" * rng.randint(0, 300), None, [], 1.5, True])
        message["params"] = rng.choice([{}, [], "p", {"name": rng.choice(["Echo", "Wait", 3]),
                                                          "arguments": rng.choice([{"text": "t"}, {"seconds": 0},
                                                                                   {"seconds": "x"}, [], None])}])
        bodies.append(json.dumps(rng.choice([message, [message], [message, message]])).encode())
    for body in bodies:
        response = await client.post("/mcp", data=body, headers={**mcp.headers(), "Content-Type": "application/json"})
        assert response.status in (200, 202, 400, 404), (body, response.status)
        text = await response.read()
        if response.status == 202:
            assert text == b""
            continue
        answer = json.loads(text)
        answers = answer if isinstance(answer, list) else [answer]
        assert answers and all(_is_answer(item) for item in answers), (body, answer)
    assert (await mcp.call("ping"))["result"] == {}
