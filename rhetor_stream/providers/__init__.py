"""LLM providers: one small interface (`Provider.stream`) and one module per wire format."""
from __future__ import annotations

import aiohttp

from rhetor_stream.providers.anthropic import AnthropicProvider
from rhetor_stream.providers.base import (
    ChatMessage,
    ChatRequest,
    ChatStream,
    HTTPSettings,
    Provider,
    UpstreamError,
    Usage,
    provider_secrets,
)
from rhetor_stream.providers.ollama import OllamaProvider
from rhetor_stream.providers.openai import OpenAIProvider
from rhetor_stream.providers.simulated import SimulatedProvider
from rhetor_stream.security.secrets import Scrubber
from rhetor_stream.settings import Settings


def build_providers(settings: Settings, session: aiohttp.ClientSession) -> dict[str, Provider]:
    """Every provider, configured from settings and sharing one HTTP session, and one scrubber that
    knows every upstream secret (an upstream may echo any of them)."""
    http = HTTPSettings(connect_timeout=settings.upstream_connect_timeout,
                        read_timeout=settings.upstream_read_timeout, retries=settings.upstream_retries)
    scrub = Scrubber(provider_secrets(settings.openai_api_key, settings.openai_base_url)
                     + provider_secrets(settings.anthropic_api_key, settings.anthropic_base_url)
                     + provider_secrets("", settings.ollama_host))
    return {
        "simulated": SimulatedProvider(tokens_per_s=settings.simulated_tokens_per_s),
        "openai": OpenAIProvider(session, base_url=settings.openai_base_url, http=http,
                                 api_key=settings.openai_api_key, scrubber=scrub),
        "anthropic": AnthropicProvider(session, base_url=settings.anthropic_base_url, http=http,
                                       api_key=settings.anthropic_api_key, scrubber=scrub),
        "ollama": OllamaProvider(session, base_url=settings.ollama_host, http=http, scrubber=scrub),
    }


__all__ = ["AnthropicProvider", "ChatMessage", "ChatRequest", "ChatStream", "HTTPSettings", "OllamaProvider",
           "OpenAIProvider", "Provider", "SimulatedProvider", "UpstreamError", "Usage", "build_providers"]
