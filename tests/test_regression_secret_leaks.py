"""Regression (issue 10, item 5): upstream error text carried API keys to clients.

An upstream that echoes the key (OpenAI's 401 says "Incorrect API key provided: sk-...") got it to the
client in 6 of 6 cases: `/stream` and `/process`, 401 body, 500 body, mid-stream error. This hostile
upstream echoes every credential it was sent, everywhere it can (bodies, mid-stream errors, headers,
masked and cut forms, the URL it was reached by); no byte sent to a client or written to the log may
hold the key, any suffix of it longer than 4 characters, or a URL password.
"""
from __future__ import annotations

import base64
import logging
from typing import Any

import orjson
import pytest
from aiohttp import web

from tests.conftest import MakeClient
from tests.fake_upstream import Upstream

OPENAI_KEY = "sk-hostile-Q7wZp2XvL9mKa4"
ANTHROPIC_KEY = "ant-key-Zq9PLmv7XwT3RkYh"  # no sk- shape: only the configured-secret rule catches it
USER, PASSWORD = "alice", "Pw9ZqLmvXtB8"

# provider, settings overrides (with {url} for the fake), the secrets that must not leak
CONFIGS = {
    "openai-key": ("openai", {"openai_base_url": "{url}/v1", "openai_api_key": OPENAI_KEY}, [OPENAI_KEY]),
    "anthropic-key": ("anthropic", {"anthropic_base_url": "{url}", "anthropic_api_key": ANTHROPIC_KEY},
                      [ANTHROPIC_KEY]),
    "openai-url-credentials": ("openai", {"openai_base_url": "{auth_url}/v1"}, [PASSWORD]),
    "ollama-url-credentials": ("ollama", {"ollama_host": "{auth_url}"}, [PASSWORD]),
}
CALLS = {
    "stream": ("/api/mcp/v2/stream", "SendMessageToSpecialistStream", {"specialist_id": "critic", "message": "hi"}),
    "process": ("/api/mcp/v2/process", "SendMessageToSpecialist", {"specialist_id": "critic", "message": "hi"}),
    "team": ("/api/mcp/v2/stream", "OrchestrateTeamChatStream",
             {"topic": "t", "specialists": ["critic"], "rounds": 1, "mode": "parallel"}),
}


def echo(request: web.Request) -> tuple[str, dict[str, str]]:
    """Everything the request carried that is secret, in every form a careless upstream shows it."""
    authorization = request.headers.get("Authorization", "")
    secret = request.headers.get("x-api-key", "") or authorization.partition(" ")[2]
    if authorization.startswith("Basic "):
        _user, _, password = base64.b64decode(secret).decode().partition(":")
        secret = password
    url = f"http://{USER}:{secret}@{request.host}{request.path}"
    text = (f"Incorrect API key provided: {secret}. You sent '{authorization}' to {url}; key ends in "
            f"...{secret[-7:]}, masked {secret[:3]}****{secret[-5:]}, cut {secret[2:]}")
    headers = {"X-Echo-Key": secret, "WWW-Authenticate": f'Bearer realm="{secret}"'}
    return text, headers


def hostile(provider: str, case: str) -> Any:
    async def respond(request: web.Request) -> web.StreamResponse:
        text, headers = echo(request)
        if case == "401":
            return web.json_response({"error": {"message": text, "type": "invalid_request_error"}}, status=401,
                                     headers=headers)
        if case == "500":
            return web.Response(text=f"<html><body>{text}</body></html>", status=500, headers=headers)
        response = web.StreamResponse(headers={**headers, "Content-Type": "text/event-stream"})
        await response.prepare(request)
        if provider == "openai":
            frames = [b'data: {"choices":[{"delta":{"content":"Hello. "}}]}\n\n',
                      b"data: " + orjson.dumps({"error": {"message": text}}) + b"\n\n"]
        elif provider == "anthropic":
            frames = [b'event: content_block_delta\ndata: {"delta":{"type":"text_delta","text":"Hello. "}}\n\n',
                      b"event: error\ndata: " + orjson.dumps({"error": {"type": "api_error", "message": text}})
                      + b"\n\n"]
        else:
            frames = [b'{"message":{"content":"Hello. "},"done":false}\n', orjson.dumps({"error": text}) + b"\n"]
        for frame in frames:
            await response.write(frame)
        return response

    return respond


def leaks(text: str, secret: str) -> list[str]:
    return [secret[start:] for start in range(len(secret) - 4) if secret[start:] in text]


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("case", ["401", "500", "mid-stream"])
@pytest.mark.parametrize("call", CALLS)
async def test_nothing_secret_reaches_a_client_or_the_log(make_client: MakeClient, upstream: Upstream,
                                                          caplog: pytest.LogCaptureFixture, config: str, case: str,
                                                          call: str) -> None:
    provider, overrides, secrets = CONFIGS[config]
    auth_url = upstream.url.replace("http://", f"http://{USER}:{PASSWORD}@")
    client = await make_client(provider=provider, **{name: value.format(url=upstream.url, auth_url=auth_url)
                                                     for name, value in overrides.items()})
    upstream.respond = hostile(provider, case)
    path, tool, arguments = CALLS[call]
    caplog.set_level(logging.DEBUG)
    async with client.post(path, json={"tool_name": tool, "arguments": arguments}) as response:
        sent = (await response.read()).decode()
    assert upstream.requests, "the upstream was asked"
    assert "upstream_" in sent  # the failure did reach the client, as an error with its code ...
    assert "Incorrect API key provided" in sent  # ... and with the upstream's words
    for secret in secrets:
        assert leaks(sent, secret) == [], sent
        assert leaks(caplog.text, secret) == [], caplog.text
