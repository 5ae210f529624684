"""Regression: a body aiohttp cannot decode was a 500 with two tracebacks (found by the fuzzer).

`Content-Encoding: gzip` on a body that is not gzip makes `request.read()` raise RequestPayloadError,
which reached the error middleware as an internal error; aiohttp then failed again draining the rest
and logged "Unhandled exception" at ERROR. Now it is a 400 `malformed_body` naming the problem, and
one INFO line.
"""
from __future__ import annotations

import asyncio
import logging

import pytest
from aiohttp.test_utils import TestClient

BODY = b'{"tool_name": "Echo", "arguments": {"text": "a"}}'


def _no_errors(caplog: pytest.LogCaptureFixture) -> None:
    bad = [record for record in caplog.records if record.levelno >= logging.ERROR or record.exc_info]
    assert not bad, [record.getMessage() for record in bad]


@pytest.mark.parametrize("endpoint", ["stream", "process", "runs"])
async def test_a_body_that_is_not_gzip_is_a_400(client: TestClient, caplog: pytest.LogCaptureFixture,
                                                endpoint: str) -> None:
    caplog.set_level(logging.DEBUG)
    response = await client.post(f"/api/mcp/v2/{endpoint}", data=BODY, headers={
        "Content-Type": "application/json", "Content-Encoding": "gzip"})
    body = await response.json()
    assert response.status == 400 and body["code"] == "malformed_body", body
    assert "content-encoding: gzip" in body["error"]
    await asyncio.sleep(0.05)  # aiohttp drains the rest of the body after the answer
    _no_errors(caplog)
