"""Regression (issue 11, item 3): usage was wrong on Anthropic-format streams.

LiteLLM (and Anthropic itself for some models) sends `input_tokens: 0` in `message_start` and the real
count in `message_delta.usage`; we kept the zero. Each provider now keeps the last value reported:
Anthropic's `message_delta.usage`, the final chunk OpenAI-compatible servers send when asked with
`stream_options.include_usage`, and Ollama's `prompt_eval_count` / `eval_count`.
"""
from __future__ import annotations

import aiohttp
import orjson

from rhetor_stream.providers import (
    AnthropicProvider,
    ChatMessage,
    ChatRequest,
    ChatStream,
    OllamaProvider,
    OpenAIProvider,
)
from rhetor_stream.providers.base import HTTPProvider
from tests.fake_upstream import FAST_HTTP, Upstream

REQUEST = ChatRequest((ChatMessage("user", "Hi"),), model="m1")


async def finish(provider: HTTPProvider) -> tuple[str, ChatStream]:
    stream = provider.stream(REQUEST)
    return "".join([delta async for delta in stream]), stream


async def test_anthropic_input_tokens_from_message_delta(upstream: Upstream, session: aiohttp.ClientSession) -> None:
    upstream.replay("litellm-anthropic-usage")
    text, stream = await finish(AnthropicProvider(session, base_url=upstream.url, http=FAST_HTTP, api_key="k"))
    assert text == "This is a mock answer." and stream.stop_reason == "end_turn"
    assert (stream.usage.input_tokens, stream.usage.output_tokens) == (31, 5)


async def test_openai_usage_is_asked_for_and_read_from_the_last_chunk(upstream: Upstream,
                                                                       session: aiohttp.ClientSession) -> None:
    chunks = [{"choices": [{"delta": {"content": "Hi"}, "finish_reason": None}], "usage": None},
              {"choices": [{"delta": {}, "finish_reason": "stop"}], "usage": None},
              {"choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": 1, "total_tokens": 13}}]
    upstream.chunks = [b"".join(b"data: " + orjson.dumps(chunk) + b"\n\n" for chunk in chunks) + b"data: [DONE]\n\n"]
    _text, stream = await finish(OpenAIProvider(session, base_url=upstream.url, http=FAST_HTTP))
    assert upstream.requests[0]["stream_options"] == {"include_usage": True}
    assert (stream.usage.input_tokens, stream.usage.output_tokens) == (12, 1)


async def test_ollama_counts(upstream: Upstream, session: aiohttp.ClientSession) -> None:
    upstream.content_type = "application/x-ndjson"
    upstream.chunks = [b'{"message":{"content":"Hi"},"done":false}\n'
                       b'{"message":{"content":""},"done":true,"done_reason":"stop","prompt_eval_count":9,'
                       b'"eval_count":2}\n']
    _text, stream = await finish(OllamaProvider(session, base_url=upstream.url, http=FAST_HTTP))
    assert (stream.usage.input_tokens, stream.usage.output_tokens) == (9, 2)
