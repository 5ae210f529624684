"""Regression: a request naming a foreign Host and Origin (what a DNS-rebinding web page sends to a
loopback server) ran the tool: `POST /process` answered 200 with "success": true."""
from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.conftest import spawn_server, stop_server
from tests.test_security_process import ECHO, request


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    process, url = spawn_server("--heartbeat", "0")
    yield int(url.rsplit(":", 1)[1])
    stop_server(process)


def test_dns_rebinding_is_refused_before_the_tool_runs(port: int) -> None:
    # The request the issue measured: it used to run the tool (200, "success": true).
    status, _, body = request(port, "POST", "/api/mcp/v2/process",
                              {"Host": f"evil.example:{port}", "Origin": f"http://evil.example:{port}",
                               "Content-Type": "application/json"}, ECHO)
    assert status == 421
    answer = json.loads(body)
    assert answer["code"] == "host_not_allowed" and "evil.example" in answer["error"]
    for path in ("/", "/health", "/api/mcp/v2/tools"):
        assert request(port, "GET", path, {"Host": "evil.example"})[0] == 421
