"""Regression (issue 11, item 4): a prompt beyond the model's context said "stream ended without [DONE]".

llama-cpp-python answers a prompt longer than its context with 200 and an empty body. The user is now
told that the upstream closed without an answer and why that usually happens; an upstream that says
the context is exceeded (in an error status or mid-stream) gets its own code, `upstream_context_length`.
"""
from __future__ import annotations

import aiohttp
import orjson
import pytest

from rhetor_stream.providers import AnthropicProvider, ChatMessage, ChatRequest, OpenAIProvider, UpstreamError
from rhetor_stream.providers.base import HTTPProvider
from tests.fake_upstream import FAST_HTTP, Upstream, upstream_error

REQUEST = ChatRequest((ChatMessage("user", "a very long prompt"),), model="tiny")


async def ask(provider: HTTPProvider) -> UpstreamError:
    return await upstream_error(provider, REQUEST)


async def test_an_empty_200_says_what_probably_happened(upstream: Upstream, session: aiohttp.ClientSession) -> None:
    upstream.replay("llamacpp-context-overflow")
    error = await ask(OpenAIProvider(session, base_url=upstream.url, http=FAST_HTTP))
    assert error.code == "upstream_incomplete"
    assert "closed the response without an answer" in error.message
    assert "longer than the context of model 'tiny'" in error.message and "[DONE]" not in error.message


@pytest.mark.parametrize("status, body", [
    (400, {"error": {"message": "This model's maximum context length is 512 tokens. However, you requested 900 "
                                "tokens.", "type": "invalid_request_error", "code": "context_length_exceeded"}}),
    (400, {"error": {"message": "the request exceeds the available context size, try increasing it",
                     "type": "exceed_context_size_error"}}),
])
async def test_context_overflow_has_its_own_code(upstream: Upstream, session: aiohttp.ClientSession, status: int,
                                                 body: object) -> None:
    upstream.status = status
    upstream.chunks = [orjson.dumps(body)]
    error = await ask(OpenAIProvider(session, base_url=upstream.url, http=FAST_HTTP))
    assert error.code == "upstream_context_length" and "the prompt is longer than" in error.message


async def test_context_overflow_mid_stream(upstream: Upstream, session: aiohttp.ClientSession) -> None:
    upstream.chunks = [b'event: error\ndata: {"type":"error","error":{"type":"invalid_request_error",'
                       b'"message":"prompt is too long: 210000 tokens > 200000 maximum"}}\n\n']
    error = await ask(AnthropicProvider(session, base_url=upstream.url, http=FAST_HTTP, api_key="k"))
    assert error.code == "upstream_context_length" and "prompt is too long" in error.message
