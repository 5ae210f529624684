"""Regression (issue 11, item 1): a slow upstream was sent the same request three times.

aiohttp's read timeout (`SocketTimeoutError`) is both a `ClientConnectionError` and a `TimeoutError`,
so waiting too long for the response headers counted as a failed connect: the whole request was
POSTed again (`--upstream-retries` 2: three requests, each billed), and the message said "cannot reach
... after 3 attempts" although the server had it each time. Only failures that prove the request never
left may be retried; the message says what happened.
"""
from __future__ import annotations

import aiohttp
from aiohttp import web

from rhetor_stream.providers import ChatMessage, ChatRequest, HTTPSettings, OpenAIProvider, UpstreamError
from tests.conftest import eventually, free_port
from tests.fake_upstream import Upstream, upstream_error

REQUEST = ChatRequest((ChatMessage("user", "Hi"),), model="m1")
HTTP = HTTPSettings(connect_timeout=1.0, read_timeout=0.3, retries=2, backoff=0.01)


async def ask(provider: OpenAIProvider) -> UpstreamError:
    return await upstream_error(provider, REQUEST)


async def test_a_slow_answer_is_waited_for_once(upstream: Upstream, session: aiohttp.ClientSession) -> None:
    upstream.header_delay = 3.0  # longer than the read timeout
    error = await ask(OpenAIProvider(session, base_url=upstream.url, http=HTTP, api_key="k"))
    await eventually(lambda: _received(upstream, 1), what="the upstream got the request")
    assert len(upstream.requests) == 1
    assert error.code == "upstream_timeout"
    assert "openai did not answer within 0.3 s" in error.message and "not repeated" in error.message
    assert "cannot reach" not in error.message and "attempts" not in error.message


async def test_a_connection_dropped_after_the_request_is_not_resent(upstream: Upstream,
                                                                    session: aiohttp.ClientSession) -> None:
    async def hang_up(request: web.Request) -> web.StreamResponse:
        assert request.transport is not None
        request.transport.close()
        return web.Response()

    upstream.respond = hang_up
    error = await ask(OpenAIProvider(session, base_url=upstream.url, http=HTTP, api_key="k"))
    assert len(upstream.requests) == 1
    assert error.code == "upstream_unavailable" and "closed the connection before answering" in error.message


async def test_a_refused_connection_is_still_retried(session: aiohttp.ClientSession) -> None:
    error = await ask(OpenAIProvider(session, base_url=f"http://127.0.0.1:{free_port()}/v1", http=HTTP))
    assert error.code == "upstream_unavailable" and "after 3 attempts" in error.message


async def _received(upstream: Upstream, count: int) -> bool:
    return len(upstream.requests) >= count
