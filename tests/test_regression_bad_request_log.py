"""Regression: every malformed request was logged at ERROR with a full traceback (issue 9, item 6).

aiohttp answers what it cannot parse (a bad request line, an oversized header, broken chunked
framing) with a 400 itself, then logged "Error handling request" at ERROR with the parser's
traceback: anyone could fill the log with them. Now each is one line at INFO (DEBUG where aiohttp
chose that) naming the problem, and errors that are not the client's keep ERROR and the traceback.
"""
from __future__ import annotations

import asyncio
import logging

import pytest
from aiohttp.http_exceptions import BadStatusLine
from aiohttp.test_utils import TestClient

MALFORMED = [
    b"GET /\x00 HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\nGARBAGE\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * 9000 + b"\r\n\r\n",
    b"POST /api/mcp/v2/stream HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    b"Transfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nBad Header: 1\r\n\r\n",
    b"GET / HTTP/9.9\r\n\r\n",
]


@pytest.mark.parametrize("raw", MALFORMED, ids=["nul", "garbage", "long-header", "chunk", "header-name", "version"])
async def test_a_malformed_request_is_one_line_without_traceback(client: TestClient, caplog: pytest.LogCaptureFixture,
                                                                 raw: bytes) -> None:
    caplog.set_level(logging.DEBUG, logger="aiohttp.server")
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    writer.write(raw)
    answer = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    assert answer.startswith(b"HTTP/1.") and b" 400 " in answer.split(b"\r\n")[0]
    records = [record for record in caplog.records if record.name == "aiohttp.server"]
    assert records, "the bad request was not logged at all"
    for record in records:
        assert record.levelno <= logging.INFO and record.exc_info is None, record.getMessage()
        assert "(malformed request)" in record.getMessage() and "\n" not in record.getMessage()


def test_other_errors_keep_their_level_and_traceback(caplog: pytest.LogCaptureFixture) -> None:
    from rhetor_stream.web.errors import ServerLog  # (new: imported here so the test above runs on old code)

    log = ServerLog(logging.getLogger("aiohttp.server"))
    with caplog.at_level(logging.DEBUG, logger="aiohttp.server"):
        log.exception("Error handling request from %s", "1.2.3.4", exc_info=RuntimeError("handler bug"))
        log.exception("Error handling request from %s", "1.2.3.4", exc_info=BadStatusLine("x\ny"))
    bug, bad = caplog.records
    assert bug.levelno == logging.ERROR and bug.exc_info is not None
    assert bad.levelno == logging.INFO and bad.exc_info is None
    assert bad.getMessage().startswith("Error handling request from 1.2.3.4 (malformed request): Bad status line")
