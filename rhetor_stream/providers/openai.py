"""OpenAI-compatible Chat Completions with `stream: true` (OpenAI, vLLM, llama.cpp, LM Studio,
Ollama's /v1): SSE frames of `chat.completion.chunk` objects, ended by `data: [DONE]`. A finished answer has a
`finish_reason`; usage comes in a last chunk of its own, asked for with `stream_options.include_usage`."""
from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from rhetor_stream.providers.base import ChatRequest, ChatStream, HTTPProvider
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

    async def read(self, body: AsyncIterator[bytes], chat: ChatStream, request: ChatRequest) -> AsyncIterator[str]:
        async for event in aiter_events(body):
            if event.data == "[DONE]":
                if chat.stop_reason is None:
                    raise self.cut_short("the stream ended with [DONE] but no finish_reason (llama.cpp's server "
                                         "ends a stream this way when another request interrupts it)")
                return
            chunk = self.decode(event.data)
            if "error" in chunk:
                error = chunk["error"]
                message = error.get("message", error) if isinstance(error, dict) else error
                raise self.reported("an error", message, "upstream_unavailable")
            usage = chunk.get("usage")
            if usage:  # the last chunk, when asked for with stream_options.include_usage
                chat.usage.report(usage.get("prompt_tokens"), usage.get("completion_tokens"))
            for choice in chunk.get("choices") or ():
                if choice.get("finish_reason"):
                    chat.stop_reason = choice["finish_reason"]
                content = (choice.get("delta") or {}).get("content")
                if content:
                    yield content
        raise self.cut_short("the stream ended without [DONE]")
