"""Security in process: API keys (flags, variable, key file with hashes), run tokens in events URLs,
what /health tells a caller without a key, per-key limits, and the pieces on their own."""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from rhetor_stream.client import StreamClient, StreamClientError
from rhetor_stream.security.capability import Capabilities
from rhetor_stream.security.hosts import HostPolicy, host_name
from rhetor_stream.security.keys import KeyFileError, KeyRing, bearer_token
from rhetor_stream.security.limits import KeyLimiter, Refusal, Slot
from rhetor_stream.settings import Settings, SettingsError
from tests.conftest import MakeClient, eventually, read_events
from tests.proxy import CuttingProxy

KEY = "test-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}
API = "/api/mcp/v2"
ECHO = {"tool_name": "Echo", "arguments": {"text": "hi"}}


# --- the pieces --------------------------------------------------------------------------------------

def test_key_ring_from_keys_and_a_file_of_keys_and_hashes(tmp_path: Path) -> None:
    hashed = hashlib.sha256(b"hashed-key").hexdigest()
    file = tmp_path / "keys"
    file.write_text(f"# operators\nfile-key\n\n  sha256:{hashed.upper()}  \n")
    ring = KeyRing.load(["flag-key"], file)
    assert ring.enabled and len(ring.digests) == 3
    assert all(ring.identify(key) for key in ("flag-key", "file-key", "hashed-key"))
    assert ring.identify("flag-ke") is None and ring.identify("sha256:" + hashed) is None
    assert ring.identify("flag-key") != ring.identify("file-key")
    assert "flag-key" not in str(ring.identify("flag-key"))
    assert not KeyRing.load([]).enabled


@pytest.mark.parametrize("text, message", [
    ("sha256:abc\n", "line 1: a hash must be 'sha256:' and 64 hex digits"),
    ("ok-key\nhas space\n", "line 2: a key must be visible ASCII"),
    ("# nothing\n\n", "holds no key"),
])
def test_bad_key_files_are_named(tmp_path: Path, text: str, message: str) -> None:
    file = tmp_path / "keys"
    file.write_text(text)
    with pytest.raises(KeyFileError, match=message):
        KeyRing.load([], file)
    with pytest.raises(KeyFileError, match="cannot read the API key file"):
        KeyRing.load([], tmp_path / "missing")


def test_bearer_token_parsing() -> None:
    assert bearer_token("Bearer abc") == "abc" and bearer_token("bearer  abc ") == "abc"
    assert bearer_token("Basic abc") is None and bearer_token("Bearer") is None and bearer_token(None) is None


def test_run_tokens_are_bound_to_their_run_and_expire() -> None:
    now = [1000.0]
    capabilities = Capabilities(b"secret", 60, clock=lambda: now[0])
    token = capabilities.issue("run-a")
    assert capabilities.problem("run-a", token) is None
    assert "not valid for this run" in str(capabilities.problem("run-b", token))
    assert "not valid" in str(Capabilities(b"other", 60).problem("run-a", token))
    expires, _, signature = token.partition(".")
    assert "not valid" in str(capabilities.problem("run-a", f"{int(expires) + 100}.{signature}"))
    assert "malformed" in str(capabilities.problem("run-a", "nonsense"))
    now[0] += 61
    assert "expired" in str(capabilities.problem("run-a", token))


def test_host_policy() -> None:
    assert [host_name(h) for h in ("LocalHost:8003", "[::1]:80", "[::1]", "127.0.0.1", "::1")] == [
        "localhost", "::1", "::1", "127.0.0.1", "::1"]
    local = HostPolicy.build("127.0.0.1", (), ())
    for host in ("localhost", "localhost:1234", "127.0.0.1:8003", "[::1]:8003", None):
        assert local.host_problem(host) is None
    assert "DNS rebinding" in str(local.host_problem("evil.example:8003"))
    proxied = HostPolicy.build("127.0.0.1", ("app.example.com",), ("https://ui.example.com/",))
    assert proxied.host_problem("app.example.com:443") is None
    assert proxied.host_problem("evil.example") is not None
    assert HostPolicy.build("0.0.0.0", (), ()).host_problem("anything") is None
    assert HostPolicy.build("127.0.0.1", ("*",), ()).host_problem("anything") is None
    # Origins: same-origin, a --cors-origin, or none at all.
    assert local.origin_problem(None, "127.0.0.1:8003") is None
    assert local.origin_problem("http://127.0.0.1:8003", "127.0.0.1:8003") is None
    assert local.origin_problem("http://localhost:8003", "127.0.0.1:8003") is not None
    assert local.origin_problem("http://evil.example:8003", "evil.example:8003") is None  # Host refuses it
    assert local.origin_problem("null", "127.0.0.1:8003") is not None
    assert proxied.origin_problem("https://ui.example.com", "app.example.com") is None
    assert "--cors-origin" in str(proxied.origin_problem("https://evil.example", "app.example.com"))


def test_limiter_counts_runs_per_key_and_per_minute() -> None:
    now = [0.0]
    limiter = KeyLimiter(concurrent=2, per_minute=3, max_tokens=0, clock=lambda: now[0])
    first, second = limiter.admit("a"), limiter.admit("a")
    assert isinstance(first, Slot) and isinstance(second, Slot)
    refused = limiter.admit("a")
    assert isinstance(refused, Refusal) and refused.limit == "key_max_concurrent_runs"
    assert isinstance(limiter.admit("b"), Slot)  # another key has its own count
    first.release()
    first.release()  # twice is harmless
    now[0] = 20.0
    third = limiter.admit("a")
    assert isinstance(third, Slot)
    third.release()
    second.release()
    refused = limiter.admit("a")
    assert isinstance(refused, Refusal) and refused.limit == "key_max_runs_per_minute"
    assert refused.retry_after == 40  # the first run of the minute leaves the window at t=60
    now[0] = 60.5
    assert isinstance(limiter.admit("a"), Slot)
    assert limiter.token_refusal(10) is None


def test_security_settings_from_flags_and_variables() -> None:
    settings = Settings.from_sources(["--api-key", "k1", "--api-key", "k2", "--allowed-host", "a.example"], {})
    assert settings.api_key == ("k1", "k2") and settings.allowed_host == ("a.example",)
    settings = Settings.from_sources([], {"RHETOR_API_KEYS": "k1, k2", "RHETOR_ALLOW_UNAUTHENTICATED": "yes",
                                          "RHETOR_HOST": "0.0.0.0"})
    assert settings.api_key == ("k1", "k2") and settings.allow_unauthenticated
    assert "k1" not in repr(settings)
    with pytest.raises(SettingsError, match="RHETOR_ALLOW_UNAUTHENTICATED must be true or false"):
        Settings.from_sources([], {"RHETOR_ALLOW_UNAUTHENTICATED": "maybe"})
    with pytest.raises(SettingsError, match="a key must be visible ASCII"):
        Settings.from_sources(["--api-key", "has space"], {})


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.10", "example.com"])
def test_a_non_loopback_bind_needs_a_key_or_says_it_is_on_purpose(host: str) -> None:
    with pytest.raises(SettingsError, match=f"--host {host} serves other machines, but no --api-key"):
        Settings.from_sources(["--host", host], {})
    Settings.from_sources(["--host", host, "--api-key", KEY], {})
    assert Settings.from_sources(["--host", host, "--allow-unauthenticated"], {}).exposed
    for loopback in ("127.0.0.1", "127.0.0.2", "::1", "localhost"):
        assert not Settings.from_sources(["--host", loopback], {}).exposed


# --- API keys on the app ------------------------------------------------------------------------------

@pytest.fixture
async def keyed(make_client: MakeClient) -> TestClient:
    return await make_client(api_key=(KEY,))


async def _error(response: Any) -> dict[str, Any]:
    assert response.headers["Content-Type"].startswith("application/json")
    return await response.json()  # type: ignore[no-any-return]


async def test_every_api_route_needs_the_key(keyed: TestClient) -> None:
    requests = [("POST", f"{API}/stream", ECHO), ("POST", f"{API}/process", ECHO), ("POST", f"{API}/runs", ECHO),
                ("GET", f"{API}/tools", None), ("GET", f"{API}/stream/test?count=1", None),
                ("GET", f"{API}/runs/abc", None), ("DELETE", f"{API}/runs/abc", None),
                ("GET", f"{API}/runs/abc/events", None), ("GET", f"{API}/no-such-route", None),
                ("POST", "/mcp", {})]
    for method, path, body in requests:
        for headers, code in (({}, "missing_api_key"), ({"Authorization": "Bearer wrong"}, "invalid_api_key"),
                              ({"Authorization": f"Basic {KEY}"}, "missing_api_key")):
            response = await keyed.request(method, path, json=body, headers=headers)
            assert response.status == 401, (method, path, headers)
            assert response.headers["WWW-Authenticate"].startswith('Bearer realm="rhetor_stream"')
            assert (await _error(response))["code"] == code
    assert (await keyed.get(f"{API}/tools", headers=AUTH)).status == 200
    response = await keyed.post(f"{API}/process", json=ECHO, headers=AUTH)
    assert (await response.json())["result"] == {"text": "hi"}
    async with keyed.post(f"{API}/stream", json=ECHO, headers={"Authorization": f"bearer {KEY}"}) as response:
        assert [event.event for event in await read_events(response)][-2:] == ["complete", "disconnect"]


async def test_keys_from_a_file_of_hashes(make_client: MakeClient, tmp_path: Path) -> None:
    file = tmp_path / "keys"
    file.write_text(f"sha256:{hashlib.sha256(KEY.encode()).hexdigest()}\n")
    client = await make_client(api_key_file=file)
    assert (await client.get(f"{API}/tools")).status == 401
    assert (await client.get(f"{API}/tools", headers=AUTH)).status == 200


async def test_health_is_open_but_tells_only_the_status_without_a_key(keyed: TestClient) -> None:
    response = await keyed.get("/health")
    assert response.status == 200 and await response.json() == {"status": "ok"}
    full = await (await keyed.get("/health", headers=AUTH)).json()
    assert full["status"] == "ok" and "pid" in full and "version" in full
    assert (await keyed.get("/")).status == 200  # the page itself is public: it asks for the key


async def test_events_url_carries_a_run_token(keyed: TestClient) -> None:
    response = await keyed.post(f"{API}/runs", json={"tool_name": "StreamText",
                                                     "arguments": {"text": "One. Two.", "delay_ms": 1}},
                                headers=AUTH)
    assert response.status == 202
    body = await response.json()
    events_url: str = body["events_url"]
    path, _, token = events_url.partition("?token=")
    assert path == f"{API}/runs/{body['run_id']}/events" and token
    async with keyed.get(events_url) as events:  # no key: the token opens this run's events
        assert events.status == 200
        assert (await read_events(events))[-1].event == "disconnect"
    refused = await keyed.get(path)
    assert refused.status == 401 and (await _error(refused))["code"] == "missing_api_key"
    refused = await keyed.get(path + "?token=" + token[:-2] + "xx")
    assert refused.status == 401 and (await _error(refused))["code"] == "invalid_run_token"
    # The token opens nothing else: not the run's status, nor another run's events.
    assert (await keyed.get(f"{API}/runs/{body['run_id']}?token={token}")).status == 401
    other = await (await keyed.post(f"{API}/runs", json=ECHO, headers=AUTH)).json()
    assert (await keyed.get(f"{API}/runs/{other['run_id']}/events?token={token}")).status == 401
    status = await (await keyed.get(body["status_url"], headers=AUTH)).json()
    assert status["events_url"].startswith(path + "?token=")



async def test_a_post_stream_says_where_to_resume_with_a_token(keyed: TestClient) -> None:
    async with keyed.post(f"{API}/stream", json=ECHO, headers=AUTH) as response:
        run_id = (await read_events(response))[0].json()["run_id"]
        resume = response.headers["X-Events-URL"]
    assert resume.startswith(f"{API}/runs/{run_id}/events?token=")
    async with keyed.get(resume, headers={"Last-Event-ID": f"{run_id[:8]}-1"}) as events:
        assert events.status == 200 and (await read_events(events))[-1].event == "disconnect"


async def test_without_keys_events_urls_stay_plain(client: TestClient) -> None:
    body = await (await client.post(f"{API}/runs", json=ECHO)).json()
    assert body["events_url"] == f"{API}/runs/{body['run_id']}/events"
    assert set(await (await client.get("/health")).json()) >= {"status", "pid", "active_streams"}


# --- per-key limits -----------------------------------------------------------------------------------

async def test_concurrent_runs_per_key(make_client: MakeClient) -> None:
    client = await make_client(api_key=(KEY, "other-key-0123"), key_max_concurrent_runs=1)
    wait = {"tool_name": "Wait", "arguments": {"seconds": 30}}
    first = await (await client.post(f"{API}/runs", json=wait, headers=AUTH)).json()
    for path in ("/runs", "/process", "/stream"):
        refused = await client.post(API + path, json=ECHO, headers=AUTH)
        assert refused.status == 429 and refused.headers["Retry-After"] == "1"
        body = await _error(refused)
        assert body["code"] == "rate_limited" and body["limit"] == "key_max_concurrent_runs"
    other = await client.post(f"{API}/process", json=ECHO, headers={"Authorization": "Bearer other-key-0123"})
    assert other.status == 200  # another key has its own budget
    assert (await client.get(f"{API}/tools", headers=AUTH)).status == 200  # reading is not a run
    await client.delete(f"{API}/runs/{first['run_id']}", headers=AUTH)

    async def slot_free() -> bool:
        return (await client.post(f"{API}/process", json=ECHO, headers=AUTH)).status == 200

    await eventually(slot_free, what="the cancelled run gave its slot back")
    # A refused or failed request takes no slot for long.
    assert (await client.post(f"{API}/process", json={"tool_name": "Nope"}, headers=AUTH)).status == 404
    assert (await client.post(f"{API}/process", json=ECHO, headers=AUTH)).status == 200


async def test_runs_per_minute_without_keys_count_everyone_together(make_client: MakeClient) -> None:
    client = await make_client(key_max_runs_per_minute=2)
    for _ in range(2):
        assert (await client.post(f"{API}/process", json=ECHO)).status == 200
    refused = await client.post(f"{API}/stream", json=ECHO)
    assert refused.status == 429 and 1 <= int(refused.headers["Retry-After"]) <= 60
    assert (await _error(refused))["limit"] == "key_max_runs_per_minute"


async def test_token_ceiling_refuses_big_requests_before_they_start(make_client: MakeClient) -> None:
    client = await make_client(key_max_tokens=2000)
    ask = {"tool_name": "SendMessageToSpecialistStream",
           "arguments": {"specialist_id": "planner", "message": "plan"}}
    async with client.post(f"{API}/stream", json=ask) as response:
        assert response.status == 200  # the planner's max_tokens (700) fits
    team = {"tool_name": "OrchestrateTeamChatStream",
            "arguments": {"topic": "t", "specialists": ["planner", "critic"], "rounds": 3}}
    refused = await client.post(f"{API}/stream", json=team)
    body = await _error(refused)
    assert refused.status == 429 and body["limit"] == "key_max_tokens"
    assert "up to 4500 LLM tokens" in body["error"]  # 3 rounds x (700 + 600) + the summary's 600
    assert (await client.get("/health")).status == 200
    assert (await (await client.get("/health")).json())["active_streams"] == 0
    team["arguments"]["rounds"] = 1
    assert (await client.post(f"{API}/process", json={**team, "tool_name": "OrchestrateTeamChat"})).status == 200


async def test_processes_sharing_redis_accept_each_others_run_tokens(make_client: MakeClient,
                                                                     redis_url: str) -> None:
    first = await make_client(api_key=(KEY,), event_store=redis_url)
    second = await make_client(api_key=(KEY,), event_store=redis_url)
    body = await (await first.post(f"{API}/runs", json=ECHO, headers=AUTH)).json()
    async with second.get(body["events_url"]) as events:
        assert events.status == 200
        assert [event.event for event in await read_events(events)][-2:] == ["complete", "disconnect"]


async def test_a_set_capability_secret_is_used(make_client: MakeClient) -> None:
    client = await make_client(api_key=(KEY,), capability_secret="shared-secret")
    body = await (await client.post(f"{API}/runs", json=ECHO, headers=AUTH)).json()
    token = body["events_url"].partition("?token=")[2]
    assert Capabilities(b"shared-secret", 60).problem(body["run_id"], token) is None


async def test_python_client_sends_its_key_on_every_request_resumes_included(make_client: MakeClient) -> None:
    server = await make_client(api_key=(KEY,), simulated_tokens_per_s=2000.0)
    text = " ".join(f"Sentence {n} of the answer." for n in range(1, 30))
    with CuttingProxy(server.server.port, cut_after=1500, target=b"POST /api/mcp/v2/stream ") as proxy:
        async with StreamClient(f"http://127.0.0.1:{proxy.port}", api_key=KEY) as api:
            events = [event async for event in api.stream("StreamText", {"text": text, "delay_ms": 5},
                                                          resume_grace_s=5)]
            assert await api.process("Echo", {"text": "hi"}) == {"text": "hi"}
            assert "pid" in await api.health()
    assert proxy.cuts == 1 and [event.type for event in events][-2:] == ["complete", "disconnect"]
    async with StreamClient(str(server.make_url("")).rstrip("/")) as api:
        with pytest.raises(StreamClientError) as caught:
            await api.tools()
    assert caught.value.status == 401 and caught.value.code == "missing_api_key"
