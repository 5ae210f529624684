"""Regression (issue 10, item 5): credentials in a base URL leaked, or crashed the provider.

With `OPENAI_BASE_URL=http://user:secret@host/v1` the error event said "cannot reach openai at
http://user:secret@..."; with a key set as well, aiohttp refused the request ("Cannot combine
AUTHORIZATION header with ... credentials encoded in URL") and the client got that as a `tool_error`.
URL credentials are now Basic auth for that upstream, base URLs are shown without them, and a key
together with them is refused at start with a message naming both settings.
"""
from __future__ import annotations

import base64

import aiohttp
import pytest

from rhetor_stream.providers import ChatMessage, ChatRequest, OllamaProvider, OpenAIProvider
from rhetor_stream.settings import Settings, SettingsError
from tests.conftest import free_port
from tests.fake_upstream import FAST_HTTP, Upstream, upstream_error

REQUEST = ChatRequest((ChatMessage("user", "Hi"),), model="m1")


async def test_url_credentials_are_basic_auth(upstream: Upstream, session: aiohttp.ClientSession) -> None:
    upstream.content_type = "application/x-ndjson"
    upstream.chunks = [b'{"message":{"content":"ok"},"done":true}\n']
    url = upstream.url.replace("http://", "http://alice:p%40ss@")
    provider = OllamaProvider(session, base_url=url, http=FAST_HTTP)
    assert "".join([delta async for delta in provider.stream(REQUEST)]) == "ok"
    assert upstream.headers[0]["Authorization"] == "Basic " + base64.b64encode(b"alice:p@ss").decode()
    assert provider.base_url == upstream.url


async def test_messages_show_the_url_without_credentials(session: aiohttp.ClientSession) -> None:
    provider = OpenAIProvider(session, base_url=f"http://user:s3cret-pw@127.0.0.1:{free_port()}/v1", http=FAST_HTTP)
    error = await upstream_error(provider, REQUEST)
    assert error.code == "upstream_unavailable" and "cannot reach openai at http://127.0.0.1:" in error.message
    assert "s3cret" not in error.message and "user" not in error.message


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_a_key_and_url_credentials_are_refused_at_start(provider: str) -> None:
    environ = {f"{provider.upper()}_BASE_URL": "http://user:s3cret-pw@proxy.example/v1",
               f"{provider.upper()}_API_KEY": "sk-configured-key-123"}
    with pytest.raises(SettingsError) as caught:
        Settings.from_sources([], environ)
    message = str(caught.value)
    assert f"--{provider}-base-url" in message and f"--{provider}-api-key" in message and "\n" not in message
    assert "http://proxy.example/v1" in message and "s3cret" not in message and "sk-configured" not in message
