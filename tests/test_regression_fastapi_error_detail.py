"""Regression (issue 11, item 4): FastAPI-style error bodies lost their text.

Servers built on FastAPI (llama-cpp-python, LiteLLM's own routes) answer errors as `{"detail": ...}`:
a text, an object, or a list of validation errors. The user now sees that text (scrubbed of secrets).
"""
from __future__ import annotations

import aiohttp
import orjson
import pytest

from rhetor_stream.providers import ChatMessage, ChatRequest, OpenAIProvider, UpstreamError
from tests.fake_upstream import FAST_HTTP, Upstream, upstream_error


async def ask(upstream: Upstream, session: aiohttp.ClientSession) -> UpstreamError:
    provider = OpenAIProvider(session, base_url=upstream.url, http=FAST_HTTP)
    return await upstream_error(provider, ChatRequest((ChatMessage("user", "Hi"),), model="tiny"))


async def test_llama_cpp_detail_is_kept(upstream: Upstream, session: aiohttp.ClientSession) -> None:
    upstream.replay("fastapi-detail")
    error = await ask(upstream, session)
    assert "Requested tokens (1200) exceed context window of 512" in error.message
    assert error.code == "upstream_context_length"


@pytest.mark.parametrize("status, body, shown", [
    (503, {"detail": "Model is still loading"}, "Model is still loading"),
    (400, {"detail": {"error": "messages: must not be empty"}}, "messages: must not be empty"),
    (422, {"detail": [{"loc": ["body", "messages"], "msg": "field required", "type": "missing"}]}, "field required"),
])
async def test_detail_shapes(upstream: Upstream, session: aiohttp.ClientSession, status: int, body: object,
                             shown: str) -> None:
    upstream.status = status
    upstream.chunks = [orjson.dumps(body)]
    error = await ask(upstream, session)
    assert f"(HTTP {status}): {shown}" in error.message
