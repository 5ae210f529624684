"""The LLM provider interface and what every HTTP provider shares.

A provider turns a list of chat messages into a `ChatStream`: an async iterator of text deltas that,
once exhausted, also knows the token usage and why the model stopped. HTTP providers share one
`aiohttp.ClientSession`, the retry policy (only connection failures before the first byte, a bounded
number of times with backoff: a request that reached the model may have cost tokens already) and the
mapping of upstream failures to stable error codes with messages a user can act on. Each provider
module holds only its wire format. API keys go into headers only: never into messages, logs or reprs.
"""
from __future__ import annotations

import abc
import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import aiohttp
import attrs
import orjson

from rhetor_stream.tools.registry import ToolError

log = logging.getLogger("rhetor_stream.providers")


@attrs.frozen
class ChatMessage:
    role: str  # "system", "user" or "assistant"
    content: str


@attrs.frozen
class ChatRequest:
    messages: tuple[ChatMessage, ...]
    model: str
    temperature: float = 0.7
    max_tokens: int = 1024

    @property
    def system(self) -> str:
        return "\n\n".join(message.content for message in self.messages if message.role == "system")

    @property
    def dialogue(self) -> list[dict[str, str]]:
        return [{"role": message.role, "content": message.content}
                for message in self.messages if message.role != "system"]


@attrs.define
class Usage:
    input_tokens: int | None = None
    output_tokens: int | None = None


class UpstreamError(ToolError):
    """A provider failure with one of the stable `upstream_*` codes."""


class ChatStream:
    """Text deltas of one answer; `usage` and `stop_reason` are filled in as the stream ends."""

    def __init__(self, produce: Callable[[ChatStream], AsyncIterator[str]]) -> None:
        self.usage = Usage()
        self.stop_reason: str | None = None
        self._deltas = produce(self)

    def __aiter__(self) -> AsyncIterator[str]:
        return self._deltas

    async def aclose(self) -> None:
        await self._deltas.aclose()  # type: ignore[attr-defined]


class Provider(abc.ABC):
    name: str
    default_model: str

    @abc.abstractmethod
    def stream(self, request: ChatRequest) -> ChatStream: ...


@attrs.frozen
class HTTPSettings:
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    retries: int = 2
    backoff: float = 0.25


class HTTPProvider(Provider):
    """A provider reached over HTTP: subclasses say where to post, with what, and how to read it."""

    def __init__(self, session: aiohttp.ClientSession, *, base_url: str, http: HTTPSettings,
                 api_key: str = "") -> None:
        self._session = session
        self.base_url = base_url.rstrip("/")
        self._http = http
        self._api_key = api_key  # only ever sent in a header

    def stream(self, request: ChatRequest) -> ChatStream:
        return ChatStream(lambda chat: self._produce(chat, request))

    @abc.abstractmethod
    def endpoint(self) -> str: ...

    @abc.abstractmethod
    def headers(self) -> dict[str, str]: ...

    @abc.abstractmethod
    def body(self, request: ChatRequest) -> dict[str, Any]: ...

    @abc.abstractmethod
    def read(self, response: aiohttp.ClientResponse, chat: ChatStream,
             request: ChatRequest) -> AsyncIterator[str]:
        """The deltas of a 200 response, in this provider's wire format."""

    def key_hint(self) -> str:
        return "check the API key"

    def decode(self, frame: str | bytes, what: str = "frame") -> Any:
        """One frame's JSON; anything else is the upstream breaking its own protocol."""
        try:
            return orjson.loads(frame)
        except orjson.JSONDecodeError:
            raise UpstreamError(f"{self.name} sent a {what} that is not JSON: {frame[:80]!r}",
                                code="upstream_protocol") from None

    async def _produce(self, chat: ChatStream, request: ChatRequest) -> AsyncIterator[str]:
        response = await self._connect(request)
        try:
            async for delta in self.read(response, chat, request):
                yield delta
        except asyncio.TimeoutError:
            raise UpstreamError(f"{self.name} sent nothing for {self._http.read_timeout:g} s "
                                f"(model {request.model})", code="upstream_timeout") from None
        except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError, ConnectionError) as exc:
            raise UpstreamError(f"the {self.name} stream broke off: {type(exc).__name__}",
                                code="upstream_protocol") from None
        finally:
            # Closing (not releasing) the connection stops the upstream generation at once when the
            # client went away: no more tokens are produced, or paid for.
            response.close()

    async def _connect(self, request: ChatRequest) -> aiohttp.ClientResponse:
        url = self.base_url + self.endpoint()
        timeout = aiohttp.ClientTimeout(sock_connect=self._http.connect_timeout,
                                        sock_read=self._http.read_timeout)
        for attempt in range(self._http.retries + 1):
            try:
                response = await self._session.post(url, json=self.body(request), headers=self.headers(),
                                                     timeout=timeout)
                break
            except (aiohttp.ClientConnectionError, asyncio.TimeoutError) as exc:
                if attempt == self._http.retries:
                    code = "upstream_timeout" if isinstance(exc, asyncio.TimeoutError) else "upstream_unavailable"
                    raise UpstreamError(f"cannot reach {self.name} at {self.base_url} after "
                                        f"{attempt + 1} attempts: {type(exc).__name__}", code=code) from None
                log.info("%s connect failed (%s); retrying", self.name, type(exc).__name__)
                await asyncio.sleep(self._http.backoff * 2 ** attempt)
        if response.status != 200:
            detail = _error_detail(await _safe_text(response))
            response.close()
            raise self._status_error(response.status, detail, request, _retry_after(response))
        return response

    def _status_error(self, status: int, detail: str, request: ChatRequest,
                      retry_after: int | None) -> UpstreamError:
        suffix = f": {detail}" if detail else ""
        when = f"try again in {retry_after} s" if retry_after is not None else "try again shortly"
        if status in (401, 403):
            return UpstreamError(f"{self.name} refused the credentials (HTTP {status}); {self.key_hint()}"
                                 f"{suffix}", code="upstream_auth")
        if status == 404:
            return UpstreamError(f"{self.name} does not know model {request.model!r} or the URL "
                                 f"{self.base_url + self.endpoint()} (HTTP 404){suffix}", code="upstream_not_found")
        if status == 429:
            return UpstreamError(f"{self.name} is rate limiting requests (HTTP 429); {when}{suffix}",
                                 code="upstream_rate_limited")
        if status >= 500:
            later = f"; {when}" if retry_after is not None else ""
            return UpstreamError(f"{self.name} is unavailable (HTTP {status}){later}{suffix}",
                                 code="upstream_unavailable")
        return UpstreamError(f"{self.name} rejected the request (HTTP {status}){suffix}", code="upstream_protocol")


def _retry_after(response: aiohttp.ClientResponse) -> int | None:
    """Seconds from a `Retry-After: <seconds>` header (the HTTP-date form is rare from LLM APIs)."""
    value = response.headers.get("Retry-After", "").strip()
    return int(value) if value.isdigit() else None


async def _safe_text(response: aiohttp.ClientResponse) -> str:
    try:
        return (await response.content.read(4096)).decode("utf-8", "replace")
    except (aiohttp.ClientError, asyncio.TimeoutError):
        return ""


def _error_detail(text: str) -> str:
    """The human part of an error body: `{"error": {"message": ...}}`, `{"error": "..."}` or text."""
    try:
        body = orjson.loads(text)
    except orjson.JSONDecodeError:
        return text.strip()[:200]
    error = body.get("error") if isinstance(body, Mapping) else None
    if isinstance(error, Mapping):
        return str(error.get("message", ""))[:200]
    if isinstance(error, str):
        return error[:200]
    return ""
