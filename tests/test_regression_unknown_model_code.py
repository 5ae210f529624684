"""Regression (issue 11, item 4): an unknown model on LiteLLM was `upstream_protocol`.

LiteLLM proxy answers an unknown model with HTTP 400 whose message names the model ("Invalid model
name passed in model=..."); that is the same fact as a 404 from OpenAI or Ollama: `upstream_not_found`.
"""
from __future__ import annotations

import aiohttp
import orjson
import pytest

from rhetor_stream.providers import ChatMessage, ChatRequest, OpenAIProvider, UpstreamError
from tests.fake_upstream import FAST_HTTP, Upstream, upstream_error


async def ask(upstream: Upstream, session: aiohttp.ClientSession, model: str) -> UpstreamError:
    provider = OpenAIProvider(session, base_url=upstream.url, http=FAST_HTTP, api_key="k")
    return await upstream_error(provider, ChatRequest((ChatMessage("user", "Hi"),), model=model))


async def test_litellm_unknown_model_is_not_found(upstream: Upstream, session: aiohttp.ClientSession) -> None:
    upstream.replay("litellm-unknown-model")
    error = await ask(upstream, session, "gpt-nonexistent")
    assert error.code == "upstream_not_found"
    assert "does not know model 'gpt-nonexistent' (HTTP 400)" in error.message
    assert "Invalid model name passed in model=gpt-nonexistent" in error.message  # the upstream's words kept


@pytest.mark.parametrize("message", [
    "max_tokens is too large: 9000. This model supports at most 4096 completion tokens",  # names no model
    "temperature must be at most 2 for model gpt-4o",  # names the model, but is not about it
])
async def test_other_bad_requests_stay_bad_requests(upstream: Upstream, session: aiohttp.ClientSession,
                                                    message: str) -> None:
    upstream.status = 400
    upstream.chunks = [orjson.dumps({"error": {"message": message}})]
    error = await ask(upstream, session, "gpt-4o")
    assert error.code == "upstream_protocol" and message in error.message
