"""OpenAI-compatible Chat Completions with `stream: true` (OpenAI, vLLM, llama.cpp, LM Studio,
Ollama's /v1): SSE frames of `chat.completion.chunk` objects, ended by `data: [DONE]`."""
from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from rhetor_stream.providers.base import ChatRequest, ChatStream, HTTPProvider, UpstreamError
from rhetor_stream.sse.parser import aiter_events


class OpenAIProvider(HTTPProvider):
    name = "openai"
    default_model = "gpt-4o-mini"

    def endpoint(self) -> str:
        return "/chat/completions"

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}

    def key_hint(self) -> str:
        return "check OPENAI_API_KEY (--openai-api-key)"

    def body(self, request: ChatRequest) -> dict[str, Any]:
        return {"model": request.model, "stream": True, "stream_options": {"include_usage": True},
                "temperature": request.temperature, "max_tokens": request.max_tokens,
                "messages": [{"role": message.role, "content": message.content} for message in request.messages]}

    async def read(self, response: aiohttp.ClientResponse, chat: ChatStream,
                   request: ChatRequest) -> AsyncIterator[str]:
        async for event in aiter_events(response.content.iter_any()):
            if event.data == "[DONE]":
                return
            chunk = self.decode(event.data)
            if "error" in chunk:
                error = chunk["error"]
                message = error.get("message", error) if isinstance(error, dict) else error
                raise UpstreamError(f"openai reported an error mid-stream: {message}", code="upstream_unavailable")
            if chunk.get("usage"):
                chat.usage.input_tokens = chunk["usage"].get("prompt_tokens")
                chat.usage.output_tokens = chunk["usage"].get("completion_tokens")
            for choice in chunk.get("choices") or ():
                if choice.get("finish_reason"):
                    chat.stop_reason = choice["finish_reason"]
                content = (choice.get("delta") or {}).get("content")
                if content:
                    yield content
        raise UpstreamError("the openai stream ended without [DONE]", code="upstream_protocol")
