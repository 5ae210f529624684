"""Regression: a Redis that refuses our credentials was reported as "cannot reach ...; try again
shortly" (redis-py's AuthenticationError is a ConnectionError), at start-up and in 503s alike. No wait
fixes a wrong password: it is `event_store_misconfigured`, said as such, with no retry hint and
without the password."""
from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest
import redis.asyncio as redis

from tests.conftest import ROOT, MakeClient, free_port, start_redis

PASSWORD = "s3cret-pw"
WRONG = "n0t-the-pw"


@pytest.fixture
def protected_redis() -> Iterator[int]:
    """A redis-server of the test's own that wants PASSWORD; its port."""
    port = free_port()
    process = start_redis(port, "--requirepass", PASSWORD)
    yield port
    process.kill()
    process.wait(timeout=10)


@pytest.mark.parametrize("credentials", [f":{WRONG}@", ""], ids=["wrong password", "no password"])
def test_start_up_says_the_credentials_were_refused(protected_redis: int, credentials: str) -> None:
    url = f"redis://{credentials}127.0.0.1:{protected_redis}/0"
    result = subprocess.run([sys.executable, "-m", "rhetor_stream", "--port", "0", "--event-store", url],
                            cwd=ROOT, capture_output=True, text=True, timeout=60)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1, result.stderr
    assert "refused the credentials" in lines[0] and "cannot reach" not in lines[0], lines[0]
    assert "try again" not in lines[0] and WRONG not in lines[0]


async def test_a_password_changed_under_a_running_server_is_a_503_that_says_so(
        make_client: MakeClient, protected_redis: int) -> None:
    client = await make_client(event_store=f"redis://:{PASSWORD}@127.0.0.1:{protected_redis}/0")
    echo = {"tool_name": "Echo", "arguments": {"text": "a"}}
    assert (await client.post("/api/mcp/v2/stream", json=echo)).status == 200

    admin = redis.Redis(port=protected_redis, password=PASSWORD)
    await admin.config_set("requirepass", WRONG)
    await admin.client_kill_filter(_type="normal", skipme=True)  # the server must log in again
    await admin.aclose()

    response = await client.post("/api/mcp/v2/stream", json=echo)
    body = await response.json()
    assert response.status == 503 and body["code"] == "event_store_misconfigured", body
    assert "refused the credentials" in body["error"] and "try again" not in body["error"], body
    assert PASSWORD not in body["error"] and WRONG not in body["error"]
    health = await client.get("/health")
    problem = (await health.json())["problem"]
    assert health.status == 503 and "refused the credentials" in problem and PASSWORD not in problem
