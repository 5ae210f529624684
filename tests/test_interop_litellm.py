"""Interoperability: the providers against a real LLM server that others wrote, LiteLLM proxy.

Every other provider test talks to fakes we wrote, which can only be as right as our reading of the
wire formats. LiteLLM proxy serves an OpenAI-compatible `/v1/chat/completions` and an Anthropic-
compatible `/v1/messages`, and answers offline with `mock_response` models. It is installed from PyPI
into a virtualenv of its own, `.venv-interop/` (its many pins never touch ours), once; later runs
reuse it. Locally the tests skip, saying why, when it cannot be installed; in CI they fail.

What LiteLLM 1.108.0 does here, and these tests hold us to: OpenAI-format streams with a finish
reason and usage in a last chunk (which we ask for); a 400 naming an unknown model; and, on
`/v1/messages`, a whole JSON answer although a stream was asked for (for mock models).
Errors other than these (401, 429, 5xx) stay with the fakes: LiteLLM cannot answer 401 without a
database.
"""
from __future__ import annotations

import fcntl
import os
import secrets
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import attrs
import pytest

from rhetor_stream.providers import ChatMessage, ChatRequest, HTTPSettings, OpenAIProvider, UpstreamError
from tests.conftest import IN_CI, ROOT, MakeClient, free_port, post_stream

LITELLM = "litellm[proxy]==1.108.0"
VENV = ROOT / ".venv-interop"
INSTALLED = VENV / ".installed-litellm-1.108.0"
ANSWER = "The plan has three steps. First, measure the baseline. Then decide what to change!"
MODELS = ("gpt-4o-mini", "claude-3-5-haiku-latest")  # the providers' default models

# Installing takes minutes the first time (the timeout covers the fixture); afterwards the proxy's
# start (about 30 s on a busy machine) is what the module costs.
pytestmark = pytest.mark.timeout(1200)


@attrs.frozen
class Proxy:
    url: str
    key: str


def unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(reason)
    pytest.skip(reason)


def install() -> Path:
    """The `litellm` command of .venv-interop, installing it there first if needed (one installer at
    a time: parallel test runs of one checkout share the directory)."""
    binary = VENV / "bin" / "litellm"
    with open(ROOT / ".venv-interop.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if INSTALLED.exists():
            return binary
        steps = ([sys.executable, "-m", "venv", str(VENV)],
                 [str(VENV / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check", LITELLM])
        for step in steps:
            try:
                subprocess.run(step, check=True, capture_output=True, text=True, timeout=900)
            except subprocess.CalledProcessError as exc:
                said = [line for line in exc.stderr.splitlines() if line.startswith("ERROR")] or ["(no message)"]
                unavailable(f"cannot install {LITELLM} into {VENV}: {said[-1]}")
            except subprocess.TimeoutExpired:
                unavailable(f"installing {LITELLM} into {VENV} took over 15 minutes")
        INSTALLED.touch()
        return binary


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    binary = install()
    folder = tmp_path_factory.mktemp("litellm")
    config = folder / "config.yaml"
    config.write_text("model_list:\n" + "".join(
        f"  - model_name: {model}\n    litellm_params:\n      model: openai/{model}\n      api_key: unused\n"
        f"      mock_response: {ANSWER!r}\n" for model in MODELS))
    port = free_port()
    key = "sk-interop-" + secrets.token_hex(16)
    env = {**os.environ, "LITELLM_MASTER_KEY": key, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    log = folder / "litellm.log"
    with open(log, "w") as output:
        process = subprocess.Popen([str(binary), "--config", str(config), "--host", "127.0.0.1", "--port", str(port)],
                                   stdout=output, stderr=subprocess.STDOUT, env=env, cwd=folder)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    try:
        while not _alive(url):
            if process.poll() is not None or time.monotonic() > deadline:
                tail = log.read_text(errors="replace").strip().splitlines()[-3:]
                pytest.fail(f"LiteLLM proxy did not start on port {port}: {' | '.join(tail)}")
            time.sleep(0.25)
        yield Proxy(url, key)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _alive(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/health/liveliness", timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


async def test_a_specialist_streams_through_the_openai_format(make_client: MakeClient, proxy: Proxy) -> None:
    client = await make_client(provider="openai", openai_base_url=proxy.url + "/v1", openai_api_key=proxy.key)
    events = await post_stream(client, "SendMessageToSpecialistStream",
                               {"specialist_id": "planner", "message": "Plan a launch"}, chunk_size="sentence")
    assert [event.event for event in events][-2:] == ["complete", "disconnect"], events[-2].data
    result = events[-2].json()["result"]
    chunks = [event.json()["content"]["content"] for event in events if event.event == "chunk"]
    assert result["content"] == ANSWER and "".join(chunks) == ANSWER and len(chunks) == 3  # one per sentence
    assert result["stop_reason"] == "stop" and result["model"] == "gpt-4o-mini"
    assert result["usage"]["input_tokens"] > 0 and result["usage"]["output_tokens"] > 0


async def test_a_parallel_team_chat(make_client: MakeClient, proxy: Proxy) -> None:
    client = await make_client(provider="openai", openai_base_url=proxy.url + "/v1", openai_api_key=proxy.key)
    events = await post_stream(client, "OrchestrateTeamChatStream",
                               {"topic": "Launch", "specialists": ["planner", "critic", "researcher"], "rounds": 2,
                                "mode": "parallel"})
    messages = [event.json() for event in events if event.event == "message"]
    assert len(messages) == 7 and events[-2].event == "complete"
    assert all("error" not in message and message["content"] == ANSWER for message in messages), messages


async def test_an_unknown_model_is_not_found(proxy: Proxy) -> None:
    async with aiohttp.ClientSession() as session:
        provider = OpenAIProvider(session, base_url=proxy.url + "/v1", http=HTTPSettings(), api_key=proxy.key)
        with pytest.raises(UpstreamError) as caught:
            async for _ in provider.stream(ChatRequest((ChatMessage("user", "Hi"),), model="no-such-model")):
                pass
    assert caught.value.code == "upstream_not_found" and "'no-such-model'" in caught.value.message
    assert proxy.key not in caught.value.message


async def test_the_anthropic_format_mock_answer_is_not_a_stream(make_client: MakeClient, proxy: Proxy) -> None:
    client = await make_client(provider="anthropic", anthropic_base_url=proxy.url, anthropic_api_key=proxy.key)
    events = await post_stream(client, "SendMessageToSpecialistStream", {"specialist_id": "critic", "message": "Hi"})
    error = events[-2].json()
    assert error["code"] == "upstream_protocol" and "a JSON document instead of a stream" in error["error"]
    assert ANSWER in error["error"]
