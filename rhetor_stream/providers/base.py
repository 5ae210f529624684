"""The LLM provider interface and what every HTTP provider shares.

A provider turns a list of chat messages into a `ChatStream`: an async iterator of text deltas that,
once exhausted, also knows the token usage and why the model stopped. HTTP providers share one
`aiohttp.ClientSession`, the retry policy and the mapping of upstream failures to stable error codes
with messages a user can act on. Each provider module holds only its wire format.

Retries: only a failure that proves the request never left (connection refused, a name that does not
resolve, no connection within the connect timeout) is retried. Once the request is sent, the model
may be generating, and paid for: a slow answer or a dropped connection is reported, never re-sent.

Completeness: an answer counts only when the stream ends the way its format says a finished answer
ends (a finish reason, `message_stop`, `done: true`); anything else is `upstream_incomplete`, with the
text that did arrive in the error's `partial_content`.

Secrets: API keys go into headers only, and credentials in a base URL become Basic auth; every
failure leaves a provider through `HTTPProvider._outgoing`, which scrubs what the upstream said
(it may echo the key) before it becomes an event, a JSON error or a log line.
"""
from __future__ import annotations

import abc
import logging
import re
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from typing import Any

import aiohttp
import attrs
import orjson

from rhetor_stream.backoff import Backoff
from rhetor_stream.security.secrets import Scrubber, basic_token, credential_secrets, public_url, url_credentials
from rhetor_stream.tools.registry import ToolError

log = logging.getLogger("rhetor_stream.providers")

# Upstream wording for a prompt beyond the model's context: OpenAI and vLLM ("maximum context
# length"), llama.cpp ("exceeds the available context size", "exceed context window"), Anthropic
# ("prompt is too long"), LiteLLM (ContextWindowExceededError).
_CONTEXT_LENGTH = re.compile(r"context[ _-]?(?:length|window|size)|maximum context|prompt is too long",
                             re.IGNORECASE)
# Upstream wording for a model it does not serve (LiteLLM: "Invalid model name passed in model=...").
_MODEL_MISSING = re.compile(r"invalid model|unknown model|no such model|"
                            r"model\b[^.\n]{0,80}?\b(?:not found|does not exist|doesn't exist|not available)",
                            re.IGNORECASE)
# An error message is cut to this many characters, after scrubbing (never before: a cut key would
# leave a fragment the scrubber cannot recognise).
MESSAGE_LIMIT = 600


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

    def report(self, input_tokens: Any = None, output_tokens: Any = None) -> None:
        """Keep the last count the upstream reports of each: Anthropic-format streams (LiteLLM, some
        Anthropic models) say 0 input tokens at the start and the real count at the end."""
        if isinstance(input_tokens, int):
            self.input_tokens = input_tokens
        if isinstance(output_tokens, int):
            self.output_tokens = output_tokens


class UpstreamError(ToolError):
    """A provider failure with one of the stable `upstream_*` codes (a bad gateway, said in HTTP)."""

    status = 502


class ChatStream:
    """Text deltas of one answer; `usage` and `stop_reason` are filled in as the stream ends."""

    def __init__(self, produce: Callable[[ChatStream], AsyncGenerator[str, None]]) -> None:
        self.usage = Usage()
        self.stop_reason: str | None = None
        self._deltas = produce(self)

    def __aiter__(self) -> AsyncIterator[str]:
        return self._deltas

    async def aclose(self) -> None:
        await self._deltas.aclose()


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
    backoff: float = 0.25  # the first pause before connecting again; they grow up to backoff_cap
    backoff_cap: float = 4.0


@attrs.define
class _Body:
    """A 200 response's body as it arrives, counted: a body of no bytes at all is its own story."""

    content: aiohttp.StreamReader
    size: int = 0

    async def chunks(self) -> AsyncIterator[bytes]:
        async for data in self.content.iter_any():
            self.size += len(data)
            yield data


class HTTPProvider(Provider):
    """A provider reached over HTTP: subclasses say where to post, with what, and how to read it."""

    def __init__(self, session: aiohttp.ClientSession, *, base_url: str, http: HTTPSettings,
                 api_key: str = "", scrubber: Scrubber | None = None) -> None:
        self._session = session
        credentials = url_credentials(base_url)
        # Credentials in the URL are sent as Basic auth, and the URL is never shown with them.
        # (Settings refuses them together with an API key: both would be the Authorization header.)
        self._basic_auth = {} if credentials is None else {"Authorization": f"Basic {basic_token(*credentials)}"}
        self.base_url = public_url(base_url).rstrip("/")
        self._http = http
        self._api_key = api_key  # only ever sent in a header
        self._scrub = scrubber or Scrubber(provider_secrets(api_key, base_url))

    def stream(self, request: ChatRequest) -> ChatStream:
        return ChatStream(lambda chat: self._produce(chat, request))

    @abc.abstractmethod
    def endpoint(self) -> str: ...

    @abc.abstractmethod
    def headers(self) -> dict[str, str]: ...

    @abc.abstractmethod
    def body(self, request: ChatRequest) -> dict[str, Any]: ...

    @abc.abstractmethod
    def read(self, body: AsyncIterator[bytes], chat: ChatStream, request: ChatRequest) -> AsyncIterator[str]:
        """The deltas of a 200 response's body, in this provider's wire format. Returns only when the
        stream ended as a finished answer ends; raises `cut_short(...)` when it ended any other way."""

    def key_hint(self) -> str:
        return "check the API key"

    def decode(self, frame: str | bytes, what: str = "frame") -> Any:
        """One frame's JSON; anything else is the upstream breaking its own protocol."""
        try:
            return orjson.loads(frame)
        except orjson.JSONDecodeError:
            raise UpstreamError(f"{self.name} sent a {what} that is not JSON: {frame[:4096]!r}",
                                code="upstream_protocol") from None

    def cut_short(self, how: str) -> UpstreamError:
        """The stream ended before the answer did (`how` says how it ended)."""
        return UpstreamError(f"the {self.name} answer is incomplete: {how}", code="upstream_incomplete")

    def reported(self, what: str, text: Any, code: str) -> UpstreamError:
        """An error the upstream reported inside a 200 stream; `code` unless it says the prompt is
        longer than the model's context."""
        text = str(text)
        if _CONTEXT_LENGTH.search(text):
            code = "upstream_context_length"
        return UpstreamError(f"{self.name} reported {what} mid-stream: {text}", code=code)

    async def _produce(self, chat: ChatStream, request: ChatRequest) -> AsyncGenerator[str, None]:
        received: list[str] | None = None  # None until the answer starts: then its text so far
        try:
            response = await self._connect(request)
            try:
                received = []
                async for delta in self._deltas(response, chat, request):
                    received.append(delta)
                    yield delta
            finally:
                # Closing (not releasing) the connection stops the upstream generation at once when
                # the client went away: no more tokens are produced, or paid for.
                response.close()
        except UpstreamError as exc:
            raise self._outgoing(exc, request, received) from None

    async def _deltas(self, response: aiohttp.ClientResponse, chat: ChatStream,
                      request: ChatRequest) -> AsyncIterator[str]:
        """`read`, with the ways a body can fail turned into upstream errors."""
        body = _Body(response.content)
        try:
            async for delta in self.read(body.chunks(), chat, request):
                yield delta
        except UpstreamError as exc:
            if exc.code == "upstream_incomplete" and body.size == 0:
                # llama.cpp's answer to a prompt beyond the model's context: 200 and nothing else.
                raise UpstreamError(f"{self.name} closed the response without an answer (HTTP 200 with an "
                                    f"empty body); the prompt may be longer than the context of model "
                                    f"{request.model!r}", code="upstream_incomplete") from None
            raise
        except TimeoutError:
            raise UpstreamError(f"{self.name} sent nothing for {self._http.read_timeout:g} s "
                                f"(model {request.model})", code="upstream_timeout") from None
        except (aiohttp.ClientError, ConnectionError) as exc:
            raise self.cut_short(f"the connection broke off ({type(exc).__name__})") from None
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            # read() takes the upstream's JSON at its word; a shape it cannot use is a protocol error.
            raise UpstreamError(f"{self.name} sent a stream of an unexpected shape ({type(exc).__name__}: "
                                f"{exc})", code="upstream_protocol") from None

    def _outgoing(self, error: UpstreamError, request: ChatRequest, partial: list[str] | None) -> UpstreamError:
        """The one way a failure leaves this provider: scrubbed of secrets (an upstream may echo the
        key it was sent), cut to a readable length, logged, and with the text that arrived."""
        message = self._scrub(error.message)
        if len(message) > MESSAGE_LIMIT:
            message = message[:MESSAGE_LIMIT - 1] + "\u2026"
        log.warning("%s request for model %s failed [%s]: %s", self.name, request.model, error.code, message)
        details = {} if partial is None else {"partial_content": "".join(partial)}
        return UpstreamError(message, code=error.code, details=details)

    async def _connect(self, request: ChatRequest) -> aiohttp.ClientResponse:
        url = self.base_url + self.endpoint()
        timeout = aiohttp.ClientTimeout(sock_connect=self._http.connect_timeout,
                                        sock_read=self._http.read_timeout)
        backoff = Backoff(self._http.backoff, self._http.backoff_cap)
        for attempt in range(1, self._http.retries + 2):
            try:
                # No redirects: a redirect would carry the key headers to wherever it points.
                response = await self._session.post(url, json=self.body(request),
                                                     headers={**self._basic_auth, **self.headers()},
                                                     timeout=timeout, allow_redirects=False)
                break
            except aiohttp.ClientSSLError as exc:
                raise UpstreamError(f"cannot reach {self.name} at {url}: TLS failed ({type(exc).__name__}); "
                                    "check the base URL and the certificates", code="upstream_unavailable") from None
            except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
                # The request never left this machine: trying again cannot bill anything twice.
                if attempt > self._http.retries:
                    raise self._unreachable(exc, url, attempt) from None
                log.info("%s at %s: connect failed (%s); retrying", self.name, url, type(exc).__name__)
                await backoff.wait()
            except TimeoutError:  # aiohttp's SocketTimeoutError: sent, and no answer in time
                raise UpstreamError(f"{self.name} did not answer within {self._http.read_timeout:g} s "
                                    f"(model {request.model}); the request was sent once and is not repeated",
                                    code="upstream_timeout") from None
            except aiohttp.ClientError as exc:
                raise UpstreamError(f"{self.name} at {url} closed the connection before answering "
                                    f"({type(exc).__name__}); the request may have reached the model, so it "
                                    "is not repeated", code="upstream_unavailable") from None
        if response.status != 200:
            text = await _safe_text(response)
            response.close()
            raise self._status_error(response, text, request)
        if response.content_type == "application/json":
            # Not a stream: an error some servers send with 200, or a whole answer although a stream was
            # asked for (LiteLLM's /v1/messages does that for its mock models).
            detail = _error_detail(await _safe_text(response))
            response.close()
            raise UpstreamError(f"{self.name} answered with a JSON document instead of a stream: {detail}",
                                code="upstream_protocol")
        return response

    def _unreachable(self, exc: aiohttp.ClientError, url: str, attempts: int) -> UpstreamError:
        tries = f"after {attempts} attempts" if attempts > 1 else "(1 attempt)"
        if isinstance(exc, aiohttp.ConnectionTimeoutError):
            return UpstreamError(f"cannot reach {self.name} at {url}: no connection within "
                                 f"{self._http.connect_timeout:g} s, {tries}", code="upstream_timeout")
        if isinstance(exc, aiohttp.ClientConnectorDNSError):
            return UpstreamError(f"cannot reach {self.name} at {url}: its host name does not resolve, {tries}",
                                 code="upstream_unavailable")
        assert isinstance(exc, aiohttp.ClientConnectorError)
        return UpstreamError(f"cannot reach {self.name} at {url}: {exc.strerror or 'connect failed'}, {tries}",
                             code="upstream_unavailable")

    def _status_error(self, response: aiohttp.ClientResponse, text: str, request: ChatRequest) -> UpstreamError:
        status = response.status
        detail = _error_detail(text)
        suffix = f": {detail}" if detail else ""
        retry_after = _retry_after(response)
        when = f"try again in {retry_after} s" if retry_after is not None else "try again shortly"
        if 300 <= status < 400:
            target = public_url(response.headers.get("Location", "elsewhere"))
            return UpstreamError(f"{self.name} answered with a redirect (HTTP {status}) to {target}; redirects "
                                 "are not followed (they would carry the key): set the base URL to the final "
                                 "address", code="upstream_protocol")
        if status in (401, 403):
            return UpstreamError(f"{self.name} refused the credentials (HTTP {status}); {self.key_hint()}"
                                 f"{suffix}", code="upstream_auth")
        if status == 429:
            return UpstreamError(f"{self.name} is rate limiting requests (HTTP 429); {when}{suffix}",
                                 code="upstream_rate_limited")
        if _CONTEXT_LENGTH.search(text):
            return UpstreamError(f"the prompt is longer than {self.name} model {request.model!r} accepts "
                                 f"(HTTP {status}){suffix}", code="upstream_context_length")
        if status == 404:
            return UpstreamError(f"{self.name} does not know model {request.model!r} or the URL "
                                 f"{self.base_url + self.endpoint()} (HTTP 404){suffix}", code="upstream_not_found")
        if status < 500 and request.model in text and _MODEL_MISSING.search(text):
            return UpstreamError(f"{self.name} does not know model {request.model!r} (HTTP {status}){suffix}",
                                 code="upstream_not_found")
        if status >= 500:
            later = f"; {when}" if retry_after is not None else ""
            return UpstreamError(f"{self.name} is unavailable (HTTP {status}){later}{suffix}",
                                 code="upstream_unavailable")
        return UpstreamError(f"{self.name} rejected the request (HTTP {status}){suffix}", code="upstream_protocol")


def provider_secrets(api_key: str, base_url: str) -> tuple[str, ...]:
    """What must never be shown of one provider's settings: its key and its URL credentials."""
    credentials = url_credentials(base_url)
    return ((api_key,) if api_key else ()) + (credential_secrets(*credentials) if credentials else ())


def _retry_after(response: aiohttp.ClientResponse) -> int | None:
    """Seconds from a `Retry-After: <seconds>` header (the HTTP-date form is rare from LLM APIs)."""
    value = response.headers.get("Retry-After", "").strip()
    return int(value) if value.isdigit() else None


async def _safe_text(response: aiohttp.ClientResponse) -> str:
    try:
        return (await response.content.read(4096)).decode("utf-8", "replace")
    except (TimeoutError, aiohttp.ClientError):
        return ""


def _error_detail(text: str) -> str:
    """The human part of an error body: `{"error": {"message": ...}}`, `{"error": "..."}`, FastAPI's
    `{"detail": ...}` (a text, an object or a list of validation errors), or the text itself."""
    try:
        body = orjson.loads(text)
    except orjson.JSONDecodeError:
        return " ".join(text.split())
    return _message_of(body) or " ".join(text.split())


def _message_of(value: Any) -> str:
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, Mapping):
        for key in ("error", "detail", "message", "msg"):
            found = _message_of(value.get(key))
            if found:
                return found
    if isinstance(value, list):
        return "; ".join(filter(None, map(_message_of, value)))
    return ""
