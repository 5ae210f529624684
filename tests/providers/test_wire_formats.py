"""Each provider against a local server speaking its exact wire format, awkward cases included."""
from __future__ import annotations

import asyncio
import itertools

import aiohttp
import orjson
import pytest

from rhetor_stream.providers import (
    AnthropicProvider,
    ChatMessage,
    ChatRequest,
    OllamaProvider,
    OpenAIProvider,
    Provider,
    UpstreamError,
)
from tests.conftest import eventually, free_port
from tests.fake_upstream import FAST_HTTP, Upstream

REQUEST = ChatRequest((ChatMessage("system", "Be brief."), ChatMessage("user", "Hi")), model="m1",
                      temperature=0.2, max_tokens=50)
SECRET = "sk-very-secret"


def openai(session: aiohttp.ClientSession, url: str) -> OpenAIProvider:
    return OpenAIProvider(session, base_url=url + "/v1", http=FAST_HTTP, api_key=SECRET)


def anthropic(session: aiohttp.ClientSession, url: str) -> AnthropicProvider:
    return AnthropicProvider(session, base_url=url, http=FAST_HTTP, api_key=SECRET)


def ollama(session: aiohttp.ClientSession, url: str) -> OllamaProvider:
    return OllamaProvider(session, base_url=url, http=FAST_HTTP)


async def collect(provider: Provider) -> tuple[str, object]:
    stream = provider.stream(REQUEST)
    text = "".join([delta async for delta in stream])
    return text, stream


def split_bytes(data: bytes, *cuts: int) -> list[bytes]:
    points = [0, *cuts, len(data)]
    return [data[start:end] for start, end in itertools.pairwise(points)]


def openai_frames(*deltas: str, newline: str = "\n") -> bytes:
    chunks = [{"choices": [{"index": 0, "delta": {"content": delta}, "finish_reason": None}]} for delta in deltas]
    chunks.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    chunks.append({"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 3}})
    text = "".join(f": keep-alive{newline}{newline}data: {orjson.dumps(chunk).decode()}{newline}{newline}"
                   for chunk in chunks)
    return (text + f"data: [DONE]{newline}{newline}").encode()


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
async def test_openai_stream(upstream: Upstream, session: aiohttp.ClientSession, newline: str) -> None:
    raw = openai_frames("Hello", ", wörld", " ✓", newline=newline)
    split = raw.index("ö".encode()) + 1  # a multi-byte character cut between two network chunks
    upstream.chunks = split_bytes(raw, split, split + 40)
    text, stream = await collect(openai(session, upstream.url))
    assert text == "Hello, wörld ✓"
    assert stream.stop_reason == "stop" and stream.usage.input_tokens == 7 and stream.usage.output_tokens == 3
    body = upstream.requests[0]
    assert body["stream"] is True and body["model"] == "m1" and body["messages"][0]["role"] == "system"
    assert upstream.headers[0]["Authorization"] == f"Bearer {SECRET}"


async def test_anthropic_stream(upstream: Upstream, session: aiohttp.ClientSession) -> None:
    events = [("message_start", {"type": "message_start", "message": {"usage": {"input_tokens": 11}}}),
              ("content_block_start", {"type": "content_block_start", "index": 0,
                                       "content_block": {"type": "text", "text": ""}}),
              ("ping", {"type": "ping"}),
              ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                       "delta": {"type": "text_delta", "text": "Grüße"}}),
              ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                       "delta": {"type": "text_delta", "text": " aus Köln"}}),
              ("content_block_stop", {"type": "content_block_stop", "index": 0}),
              ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn"},
                                 "usage": {"output_tokens": 4}}),
              ("message_stop", {"type": "message_stop"})]
    raw = "".join(f"event: {name}\r\ndata: {orjson.dumps(data).decode()}\r\n\r\n" for name, data in events).encode()
    split = raw.index("ü".encode()) + 1
    upstream.chunks = split_bytes(raw, split)
    text, stream = await collect(anthropic(session, upstream.url))
    assert text == "Grüße aus Köln"
    assert stream.stop_reason == "end_turn" and stream.usage.input_tokens == 11 and stream.usage.output_tokens == 4
    assert upstream.requests[0]["system"] == "Be brief." and upstream.requests[0]["messages"] == [
        {"role": "user", "content": "Hi"}]
    assert upstream.headers[0]["x-api-key"] == SECRET and upstream.headers[0]["anthropic-version"]


async def test_ollama_stream(upstream: Upstream, session: aiohttp.ClientSession) -> None:
    lines = [{"message": {"role": "assistant", "content": "Ciào"}, "done": False},
             {"message": {"role": "assistant", "content": " mondo"}, "done": False},
             {"message": {"role": "assistant", "content": ""}, "done": True, "done_reason": "stop",
              "prompt_eval_count": 5, "eval_count": 2}]
    raw = b"".join(orjson.dumps(line) + b"\n" for line in lines)
    split = raw.index("à".encode()) + 1
    upstream.content_type = "application/x-ndjson"
    upstream.chunks = split_bytes(raw, split)
    text, stream = await collect(ollama(session, upstream.url))
    assert text == "Ciào mondo" and stream.stop_reason == "stop" and stream.usage.output_tokens == 2


@pytest.mark.parametrize("status, code, mentions", [
    (401, "upstream_auth", "OPENAI_API_KEY"), (403, "upstream_auth", "credentials"),
    (404, "upstream_not_found", "'m1'"), (429, "upstream_rate_limited", "rate limiting"),
    (500, "upstream_unavailable", "HTTP 500"), (503, "upstream_unavailable", "overloaded"),
])
async def test_http_errors_map_to_stable_codes(upstream: Upstream, session: aiohttp.ClientSession, status: int,
                                               code: str, mentions: str) -> None:
    upstream.status = status
    upstream.chunks = [orjson.dumps({"error": {"message": "overloaded, try later", "type": "x"}})]
    with pytest.raises(UpstreamError) as caught:
        await collect(openai(session, upstream.url))
    assert caught.value.code == code and mentions in caught.value.message
    assert SECRET not in caught.value.message


@pytest.mark.parametrize("status, retry_after, mentions", [
    (429, "20", "try again in 20 s"), (429, "", "try again shortly"), (503, "7", "try again in 7 s"),
])
async def test_retry_after_is_passed_on(upstream: Upstream, session: aiohttp.ClientSession, status: int,
                                        retry_after: str, mentions: str) -> None:
    upstream.status = status
    upstream.error_headers = {"Retry-After": retry_after} if retry_after else {}
    with pytest.raises(UpstreamError) as caught:
        await collect(anthropic(session, upstream.url))
    assert mentions in caught.value.message


@pytest.mark.parametrize("make, raw, code", [
    (openai, b'data: {"choices":[{"delta":{"content":"a"}}]}\n\ndata: {"error":{"message":"boom"}}\n\n',
     "upstream_unavailable"),
    (openai, b'data: {"choices":[{"delta":{"content":"a"}}]}\n\n', "upstream_incomplete"),  # no [DONE]
    (openai, b"data: {not json\n\n", "upstream_protocol"),
    (anthropic, b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"busy"}}\n\n',
     "upstream_unavailable"),
    (anthropic, b'event: message_start\ndata: {"message":{"usage":{}}}\n\n', "upstream_incomplete"),
    (anthropic, b"event: content_block_delta\ndata: {not json\n\n", "upstream_protocol"),
    (ollama, b'{"message":{"content":"a"},"done":false}\n{"error":"model crashed"}\n', "upstream_unavailable"),
    (ollama, b'{"message":{"content":"a"},"done":false}\n', "upstream_incomplete"),
    (ollama, b'{"message":{"content":"a"},"done":false}\n{not json\n', "upstream_protocol"),
])
async def test_broken_streams(upstream: Upstream, session: aiohttp.ClientSession, make: object, raw: bytes,
                              code: str) -> None:
    upstream.chunks = [raw]
    with pytest.raises(UpstreamError) as caught:
        await collect(make(session, upstream.url))  # type: ignore[operator]
    assert caught.value.code == code


async def test_connect_refused_is_retried_then_unavailable(session: aiohttp.ClientSession) -> None:
    provider = openai(session, f"http://127.0.0.1:{free_port()}")
    with pytest.raises(UpstreamError) as caught:
        await collect(provider)
    assert caught.value.code == "upstream_unavailable" and "after 3 attempts" in caught.value.message


async def test_silent_upstream_times_out(upstream: Upstream, session: aiohttp.ClientSession) -> None:
    upstream.stall = True
    with pytest.raises(UpstreamError) as caught:
        await collect(openai(session, upstream.url))
    assert caught.value.code == "upstream_timeout"


async def test_cancelling_the_consumer_closes_the_upstream_connection(upstream: Upstream,
                                                                      session: aiohttp.ClientSession) -> None:
    upstream.forever = b'data: {"choices":[{"delta":{"content":"tok "}}]}\n\n'
    stream = openai(session, upstream.url).stream(REQUEST)
    first = asyncio.Event()

    async def consume() -> None:
        async for _ in stream:
            first.set()

    task = asyncio.ensure_future(consume())
    await first.wait()
    loop = asyncio.get_running_loop()
    cancelled_at = loop.time()
    task.cancel()
    await eventually(upstream.was_closed, what="the upstream saw its connection closed")
    assert upstream.closed_at is not None and upstream.closed_at - cancelled_at < 0.2


async def test_a_json_document_instead_of_a_stream(upstream: Upstream, session: aiohttp.ClientSession) -> None:
    upstream.content_type = "application/json"
    upstream.chunks = [b'{"type":"message","content":[{"type":"text","text":"Whole answer"}],"stop_reason":"end_turn"}']
    with pytest.raises(UpstreamError) as caught:
        await collect(anthropic(session, upstream.url))
    assert caught.value.code == "upstream_protocol" and "a JSON document instead of a stream" in caught.value.message
    assert "Whole answer" in caught.value.message
