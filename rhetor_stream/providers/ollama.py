"""Ollama's native `/api/chat` stream: one JSON object per line, the last with `done: true`."""
from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from rhetor_stream.providers.base import ChatRequest, ChatStream, HTTPProvider


class OllamaProvider(HTTPProvider):
    name = "ollama"
    default_model = "llama3.2"

    def endpoint(self) -> str:
        return "/api/chat"

    def headers(self) -> dict[str, str]:
        return {}

    def key_hint(self) -> str:
        return "Ollama needs no key; check that OLLAMA_HOST points at Ollama"

    def body(self, request: ChatRequest) -> dict[str, Any]:
        return {"model": request.model, "stream": True,
                "options": {"temperature": request.temperature, "num_predict": request.max_tokens},
                "messages": [{"role": message.role, "content": message.content} for message in request.messages]}

    async def read(self, body: AsyncIterator[bytes], chat: ChatStream, request: ChatRequest) -> AsyncIterator[str]:
        buffer = b""
        async for data in body:
            buffer += data
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                if not line.strip():
                    continue
                item = self.decode(line, "line")
                if "error" in item:
                    raise self.reported("an error", item["error"], "upstream_unavailable")
                content = (item.get("message") or {}).get("content")
                if content:
                    yield content
                if item.get("done"):
                    chat.stop_reason = item.get("done_reason", "stop")
                    chat.usage.report(item.get("prompt_eval_count"), item.get("eval_count"))
                    return
        raise self.cut_short("the stream ended without done: true")
