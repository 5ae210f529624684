"""Anthropic's Messages API stream: `message_start`, `content_block_delta`, `message_delta`,
`message_stop`, with `ping` keep-alives and `error` events in between. Usage is reported twice:
`message_start` may say 0 input tokens (LiteLLM does) and `message_delta` the final counts."""
from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from rhetor_stream.providers.base import ChatRequest, ChatStream, HTTPProvider
from rhetor_stream.sse.parser import aiter_events

API_VERSION = "2023-06-01"
_ERROR_CODES = {"overloaded_error": "upstream_unavailable", "api_error": "upstream_unavailable",
                "rate_limit_error": "upstream_rate_limited", "authentication_error": "upstream_auth",
                "permission_error": "upstream_auth", "not_found_error": "upstream_not_found"}


class AnthropicProvider(HTTPProvider):
    name = "anthropic"
    default_model = "claude-3-5-haiku-latest"

    def endpoint(self) -> str:
        return "/v1/messages"

    def headers(self) -> dict[str, str]:
        return {"x-api-key": self._api_key, "anthropic-version": API_VERSION}

    def key_hint(self) -> str:
        return "check ANTHROPIC_API_KEY (--anthropic-api-key)"

    def body(self, request: ChatRequest) -> dict[str, Any]:
        body: dict[str, Any] = {"model": request.model, "stream": True, "max_tokens": request.max_tokens,
                                "temperature": request.temperature, "messages": request.dialogue}
        if request.system:
            body["system"] = request.system
        return body

    async def read(self, body: AsyncIterator[bytes], chat: ChatStream, request: ChatRequest) -> AsyncIterator[str]:
        async for event in aiter_events(body):
            if event.event == "ping":
                continue
            data = self.decode(event.data)
            if event.event == "error":
                error = data.get("error", {})
                kind = error.get("type", "")
                raise self.reported(kind or "an error", error.get("message", ""),
                                    _ERROR_CODES.get(kind, "upstream_unavailable"))
            if event.event == "message_start":
                usage = data.get("message", {}).get("usage") or {}
                chat.usage.report(usage.get("input_tokens"), usage.get("output_tokens"))
            elif event.event == "content_block_delta":
                delta = data.get("delta", {})
                if delta.get("type") == "text_delta" and delta.get("text"):
                    yield delta["text"]
            elif event.event == "message_delta":
                chat.stop_reason = data.get("delta", {}).get("stop_reason")
                usage = data.get("usage") or {}
                chat.usage.report(usage.get("input_tokens"), usage.get("output_tokens"))
            elif event.event == "message_stop":
                return
        raise self.cut_short("the stream ended without message_stop")
