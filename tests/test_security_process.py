"""Security against a real `python -m rhetor_stream` process, over raw sockets so that the `Host`,
`Origin` and `Authorization` headers are exactly what a browser or an attacker would send."""
from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.conftest import ROOT, spawn_server, stop_server

KEY = "process-key-0123456789"
ECHO = json.dumps({"tool_name": "Echo", "arguments": {"text": "hi"}})


def request(port: int, method: str, path: str, headers: dict[str, str],
            body: str = "") -> tuple[int, dict[str, str], str]:
    """One HTTP/1.1 request with exactly these headers; the status, headers and body."""
    head = f"{method} {path} HTTP/1.1\r\nConnection: close\r\nContent-Length: {len(body.encode())}\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall((head + "\r\n" + body).encode())
        raw = b""
        while chunk := sock.recv(65536):
            raw += chunk
    head_bytes, _, payload = raw.partition(b"\r\n\r\n")
    lines = head_bytes.decode().split("\r\n")
    fields = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), {name.lower(): value for name, value in fields.items()}, payload.decode()


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    process, url = spawn_server("--heartbeat", "0", "--allowed-host", "proxy.example",
                                "--cors-origin", "http://ui.example:9000")
    yield int(url.rsplit(":", 1)[1])
    stop_server(process)


def _post(port: int, headers: dict[str, str]) -> tuple[int, dict[str, str], str]:
    return request(port, "POST", "/api/mcp/v2/process", {"Content-Type": "application/json", **headers}, ECHO)


@pytest.mark.parametrize("host", ["localhost", "localhost:{port}", "127.0.0.1:{port}", "[::1]:{port}",
                                  "LOCALHOST:1", "proxy.example", "proxy.example:443"])
def test_loopback_names_and_allowed_hosts_pass(port: int, host: str) -> None:
    status, _, body = _post(port, {"Host": host.format(port=port)})
    assert status == 200 and json.loads(body)["success"] is True


def test_foreign_origins_are_refused_same_origin_and_cors_origins_pass(port: int) -> None:
    host = f"127.0.0.1:{port}"
    status, _, body = _post(port, {"Host": host, "Origin": "http://evil.example"})
    assert status == 403 and json.loads(body)["code"] == "origin_not_allowed"
    assert _post(port, {"Host": host, "Origin": "null"})[0] == 403
    assert _post(port, {"Host": f"localhost:{port}", "Origin": f"http://127.0.0.1:{port}"})[0] == 403
    assert _post(port, {"Host": host, "Origin": f"http://{host}"})[0] == 200
    assert _post(port, {"Host": host, "Origin": "http://ui.example:9000"})[0] == 200


def test_a_keyed_server_answers_401_with_a_bearer_challenge() -> None:
    process, url = spawn_server("--api-key", KEY)
    port = int(url.rsplit(":", 1)[1])
    try:
        status, headers, body = _post(port, {"Host": f"127.0.0.1:{port}"})
        assert status == 401 and headers["www-authenticate"] == 'Bearer realm="rhetor_stream"'
        assert headers["content-type"].startswith("application/json")
        assert json.loads(body)["code"] == "missing_api_key"
        # The Host check comes first: a rebinding page learns nothing, not even that a key is needed.
        assert _post(port, {"Host": "evil.example", "Authorization": f"Bearer {KEY}"})[0] == 421
        status, _, body = _post(port, {"Host": f"127.0.0.1:{port}", "Authorization": f"Bearer {KEY}"})
        assert status == 200 and json.loads(body)["success"] is True
        status, _, body = request(port, "GET", "/health", {"Host": f"127.0.0.1:{port}"})
        assert status == 200 and json.loads(body) == {"status": "ok"}
    finally:
        stop_server(process)


def test_allow_unauthenticated_starts_with_a_warning() -> None:
    process = subprocess.Popen([sys.executable, "-m", "rhetor_stream", "--host", "0.0.0.0", "--port", "0",
                                "--allow-unauthenticated"], cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None and process.stderr is not None
        line = process.stdout.readline()
        match = re.search(r"Serving on http://0\.0\.0\.0:(\d+)", line)
        assert match, line
        port = int(match.group(1))
        assert "without an API key (--allow-unauthenticated)" in process.stderr.readline()
        # No Host check on a public bind without --allowed-host (any name may reach it), but the
        # Origin check still keeps other web pages out.
        assert _post(port, {"Host": "server.example"})[0] == 200
        assert _post(port, {"Host": "server.example", "Origin": "http://evil.example"})[0] == 403
    finally:
        stop_server(process)


def test_the_checker_uses_its_key() -> None:
    process, url = spawn_server("--simulated-tokens-per-s", "2000", "--api-key", KEY)
    try:
        command = [sys.executable, "-m", "rhetor_stream.check", "--url", url, "--test", "basic", "--quiet"]
        refused = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert refused.returncode == 1 and "missing_api_key" in refused.stdout
        passed = subprocess.run([*command, "--api-key", KEY], cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert passed.returncode == 0, passed.stdout + passed.stderr
    finally:
        stop_server(process)
