"""The interactive page in real Chromium: the test stream, a specialist, a team chat, Stop, a
resumable run that survives a cut connection through EventSource's own reconnect, and all of it
against a server that needs an API key."""
from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser.conftest import ARTIFACTS
from tests.conftest import spawn_server, stop_server
from tests.proxy import CuttingProxy

pytestmark = pytest.mark.browser
TEXT = " ".join(f"Sentence {n} of the answer." for n in range(1, 16))


def health(base: str) -> dict[str, Any]:
    with urllib.request.urlopen(base + "/health", timeout=5) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]


def open_page(browser: Any, url: str) -> Any:
    page = browser.new_page()
    page.goto(url + "/")
    page.wait_for_selector("body[data-ready='1']")
    return page


def wait_state(page: Any, state: str, timeout: float = 20_000) -> None:
    page.wait_for_selector(f"#status[data-state='{state}']", timeout=timeout)


def test_streams_specialist_and_team_chat(browser: Any, server: str) -> None:
    page = open_page(browser, server)
    # The test stream, read with EventSource.
    page.fill("#test-count", "4")
    page.fill("#test-interval", "50")
    page.click("[data-testid=test-stream]")
    wait_state(page, "complete")
    assert page.inner_text("#chunk-count") == "4"
    assert page.locator("#log-body tr").count() == 8  # connected, progress, 4 chunks, complete, disconnect

    # One specialist, streamed in sentences through fetch + a stream reader.
    page.select_option("#tool", "SendMessageToSpecialistStream")
    page.select_option("#arg-specialist_id", "code-reviewer")
    page.fill("#arg-message", "Review my retry loop with exponential backoff")
    page.click("[data-testid=run]")
    wait_state(page, "complete")
    answer = page.inner_text("#answer")
    assert "Simulated provider" in answer and "exponential" in answer
    assert int(page.inner_text("#chunk-count")) > 3
    assert page.inner_text("#execution-time").endswith(" s")

    # A team chat: the transcript shows each speaker and round.
    page.select_option("#tool", "OrchestrateTeamChatStream")
    page.fill("#arg-topic", "Should we cache model answers?")
    page.fill("#arg-rounds", "1")
    page.select_option("#arg-specialists", ["planner", "critic"])
    page.click("[data-testid=run]")
    wait_state(page, "complete", timeout=30_000)
    entries = page.locator("#transcript li")
    assert entries.count() == 3
    assert "round 1" in entries.nth(0).inner_text() and "summary" in entries.nth(2).inner_text()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "streaming_client.png"), full_page=True)
    page.close()


def test_stop_cancels_the_work_on_the_server(browser: Any, server: str) -> None:
    page = open_page(browser, server)
    page.select_option("#tool", "Wait")
    page.fill("#arg-seconds", "30")
    page.click("[data-testid=run]")
    page.wait_for_function("document.getElementById('status').textContent.includes('Wait')")
    assert health(server)["active_tools"] == 1
    page.click("[data-testid=stop]")
    deadline = time.monotonic() + 1.0
    while health(server)["active_tools"] != 0:
        assert time.monotonic() < deadline, "the server kept running the stopped tool"
        time.sleep(0.02)
    wait_state(page, "stopped")
    page.close()


def test_resumable_run_survives_a_cut_connection(browser: Any, server: str) -> None:
    port = int(server.rsplit(":", 1)[1])
    with CuttingProxy(port, cut_after=1200) as proxy:
        page = open_page(browser, f"http://127.0.0.1:{proxy.port}")
        page.select_option("#tool", "StreamText")
        page.fill("#arg-text", TEXT)
        page.fill("#arg-delay_ms", "40")
        page.check("#detached")
        page.click("[data-testid=run]")
        wait_state(page, "complete", timeout=30_000)
        assert proxy.cuts == 1
        assert page.inner_text("#answer") == TEXT  # the whole answer, exactly once
        ids = page.eval_on_selector_all("#log-body tr td:nth-child(2)", "cells => cells.map(c => c.textContent)")
        numbers = [int(event_id.rsplit("-", 1)[1]) for event_id in ids]
        assert numbers == list(range(1, len(numbers) + 1))
        page.close()


KEY = "browser-key-0123456789"


@pytest.fixture
def keyed_server() -> Iterator[str]:
    process, url = spawn_server("--simulated-tokens-per-s", "300", "--retry-ms", "300", "--api-key", KEY)
    yield url
    stop_server(process)


def test_a_server_that_needs_a_key(browser: Any, keyed_server: str) -> None:
    page = browser.new_page()
    page.goto(keyed_server + "/")
    page.wait_for_selector("#key-panel:not([hidden])")
    assert page.inner_text("#status") == "API key needed"
    page.fill("#api-key", "wrong-key")
    page.click("[data-testid=use-key]")
    page.wait_for_selector("#key-panel:not([hidden])")  # asked again
    assert "invalid_api_key" in page.inner_text("#error")
    page.fill("#api-key", KEY)
    page.click("[data-testid=use-key]")
    page.wait_for_selector("body[data-ready='1']")
    assert page.evaluate("sessionStorage.getItem('rhetor_stream.api_key')") == KEY

    # The test stream (EventSource cannot send the key: the page reads it with fetch).
    page.fill("#test-count", "3")
    page.fill("#test-interval", "20")
    page.click("[data-testid=test-stream]")
    wait_state(page, "complete")
    assert page.inner_text("#chunk-count") == "3"

    # A streamed specialist answer (POST /stream with the key).
    page.select_option("#tool", "SendMessageToSpecialistStream")
    page.select_option("#arg-specialist_id", "planner")
    page.fill("#arg-message", "Plan a launch")
    page.click("[data-testid=run]")
    wait_state(page, "complete")
    assert "Simulated provider" in page.inner_text("#answer")

    # A resumable run: EventSource opens the events URL through the run token it carries.
    page.select_option("#tool", "StreamText")
    page.fill("#arg-text", "One sentence. Another one.")
    page.fill("#arg-delay_ms", "10")
    page.check("#detached")
    page.click("[data-testid=run]")
    wait_state(page, "complete")
    assert page.inner_text("#answer") == "One sentence. Another one."

    # The key stays for this tab: a reload needs no new prompt.
    page.reload()
    page.wait_for_selector("body[data-ready='1']")
    assert page.is_hidden("#key-panel")
    page.close()
