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


def screenshot(page: Any, name: str) -> None:
    """For a person to look at (test-artifacts/ is not committed); the assertions check the DOM."""
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"page_{name}.png"), full_page=True)


def at_rest(page: Any, state: str) -> None:
    """What must hold whenever nothing runs: the stage is not a running one, the bar is still
    (determinate), the buttons offer a new run and no turn claims to be spoken."""
    assert page.inner_text("#stage") in ("-", state)
    assert page.eval_on_selector("#progress", "bar => bar.position") >= 0  # -1: indeterminate, animating
    assert page.is_enabled("[data-testid=run]") and page.is_enabled("[data-testid=test-stream]")
    assert page.is_disabled("[data-testid=stop]")
    assert page.locator("#transcript li.live").count() == 0
    assert page.get_attribute("#progress", "data-state") == state


def elapsed(page: Any) -> float:
    return float(page.inner_text("#elapsed").removesuffix(" s"))


@pytest.fixture(scope="module")
def shared_server() -> Iterator[str]:
    """One server for the tests that only read the page or run short, independent tools."""
    process, url = spawn_server("--simulated-tokens-per-s", "300", "--retry-ms", "300")
    yield url
    stop_server(process)


def test_the_page_at_rest_is_still(browser: Any, shared_server: str) -> None:
    page = open_page(browser, shared_server)
    assert page.inner_text("#status") == "idle"
    at_rest(page, "idle")
    screenshot(page, "idle")
    page.close()


def test_no_console_error_and_a_favicon(browser: Any, shared_server: str) -> None:
    page = browser.new_page()
    problems: list[str] = []
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    page.on("response", lambda response: problems.append(f"{response.status} {response.url}")
            if response.status >= 400 else None)
    page.goto(shared_server + "/")
    page.wait_for_selector("body[data-ready='1']")
    page.wait_for_load_state("networkidle")
    assert problems == []  # no favicon 404, no failed call
    assert page.get_attribute("link[rel=icon]", "href").startswith("data:image/svg+xml,")
    page.close()


def test_every_tool_name_fits_the_dropdown(browser: Any, shared_server: str) -> None:
    page = open_page(browser, shared_server)
    room = page.eval_on_selector("#tool", """select => {
        const context = document.createElement("canvas").getContext("2d");
        context.font = getComputedStyle(select).font;
        const widest = Math.max(...[...select.options].map((o) => context.measureText(o.textContent).width));
        return select.clientWidth - widest; }""")
    assert room > 30, room  # the arrow and the padding need about 30 px
    page.close()


def test_deprecated_aliases_are_not_drawn(browser: Any, shared_server: str) -> None:
    """The old Rhetor spellings are accepted (raw JSON) but not offered as inputs."""
    page = open_page(browser, shared_server)
    for tool, kept, dropped in [("ListAISpecialists", "status", "filter_by_status"),
                                ("OrchestrateTeamChatStream", "rounds", "max_rounds"),
                                ("SendMessageToSpecialistStream", "conversation_id", "context_id")]:
        page.select_option("#tool", tool)
        assert page.locator(f"#arg-{kept}").count() == 1
        assert page.locator(f"#arg-{dropped}").count() == 0, dropped
    page.close()


def test_the_specialists_picker_says_none_means_everyone(browser: Any, shared_server: str) -> None:
    page = open_page(browser, shared_server)
    page.select_option("#tool", "OrchestrateTeamChatStream")
    hint = page.locator("#arg-specialists + .hint")
    assert "none selected" in hint.inner_text().lower() and "whole default team" in hint.inner_text()
    page.select_option("#arg-specialists", ["planner", "critic"])
    assert hint.inner_text().startswith("Team: Brunel (planner), Socrates (critic).")
    page.close()


def test_test_stream_chunks_are_kept_apart(browser: Any, shared_server: str) -> None:
    page = open_page(browser, shared_server)
    page.fill("#test-count", "4")
    page.fill("#test-interval", "50")
    page.click("[data-testid=test-stream]")
    wait_state(page, "complete")
    at_rest(page, "complete")
    assert page.inner_text("#chunk-count") == "4"
    assert page.locator("#log-body tr").count() == 8  # connected, progress, 4 chunks, complete, disconnect
    lines = page.inner_text("#answer").split("\n")
    assert [line.split(". ", 1)[0] for line in lines] == ["1", "2", "3", "4"], lines
    assert all(line.split(". ", 1)[1].startswith("Server-Sent Events") for line in lines)
    screenshot(page, "test_stream")
    page.close()


def test_an_instant_error_shows_its_own_stage_and_time(browser: Any, shared_server: str) -> None:
    page = open_page(browser, shared_server)
    page.fill("#test-count", "4")
    page.fill("#test-interval", "300")
    page.click("[data-testid=test-stream]")
    wait_state(page, "complete")
    slow = elapsed(page)
    assert slow >= 0.9  # three intervals of 300 ms
    # A 400 before the stream starts: stage, elapsed and output belong to this run, not the last.
    page.select_option("#tool", "Echo")
    page.check("#raw-toggle")
    page.fill("#raw", '{"no_such_argument": 1}')
    page.click("[data-testid=run]")
    wait_state(page, "error")
    assert "invalid_arguments" in page.inner_text("#error")
    assert elapsed(page) < slow
    assert page.inner_text("#chunk-count") == "0" and page.inner_text("#answer") == ""
    assert page.inner_text("#stage") == "error"
    at_rest(page, "error")
    screenshot(page, "instant_error")
    page.close()


def test_a_specialist_answer_streams(browser: Any, shared_server: str) -> None:
    page = open_page(browser, shared_server)
    page.select_option("#tool", "SendMessageToSpecialistStream")
    page.select_option("#arg-specialist_id", "code-reviewer")
    page.fill("#arg-message", "Review my retry loop with exponential backoff")
    page.click("[data-testid=run]")
    wait_state(page, "complete")
    at_rest(page, "complete")
    answer = page.inner_text("#answer")
    assert "Simulated provider" in answer and "exponential" in answer
    assert int(page.inner_text("#chunk-count")) > 3
    assert page.inner_text("#execution-time").endswith(" s")
    page.close()


def test_a_tool_without_chunks_shows_its_result(browser: Any, shared_server: str) -> None:
    page = open_page(browser, shared_server)
    page.select_option("#tool", "Echo")
    page.fill("#arg-text", "hello")
    page.click("[data-testid=run]")
    wait_state(page, "complete")
    assert json.loads(page.inner_text("#answer")) == {"text": "hello"}
    # The one-answer team chat: its transcript and summary come in the result (directive: the
    # coordinator assigns the tasks of each round first).
    page.select_option("#tool", "OrchestrateTeamChat")
    page.fill("#arg-topic", "Tabs or spaces?")
    page.fill("#arg-rounds", "1")
    page.select_option("#arg-specialists", ["critic"])
    page.select_option("#arg-orchestration_style", "directive")
    page.click("[data-testid=run]")
    wait_state(page, "complete")
    at_rest(page, "complete")
    whos = page.locator("#transcript li .who").all_inner_texts()
    assert whos == ["Rhetor · tasks for round 1", "Socrates · round 1", "Rhetor · summary after round 1"], whos
    assert page.inner_text("#answer").startswith("Rhetor · summary after round 1")
    page.close()


def test_a_team_chat_reads_like_a_conversation(browser: Any, shared_server: str) -> None:
    """One bubble per turn, the live one names its speaker, the summary where the eye lands."""
    page = open_page(browser, shared_server)
    page.select_option("#tool", "OrchestrateTeamChatStream")
    page.fill("#arg-topic", "Should we cache model answers?")
    page.fill("#arg-initial_prompt", "We pay per token.")
    page.fill("#arg-rounds", "2")
    page.select_option("#arg-specialists", ["planner", "critic"])
    page.click("[data-testid=run]")
    speaking = page.wait_for_function("""() => {
        const live = document.querySelectorAll('#transcript li.live .who');
        return live.length === 1 && live[0].innerText; }""").json_value()
    name, said = speaking.split(" is speaking…")
    assert name in ("Rhetor", "Brunel", "Socrates") and said in (" · opening", " · round 1", " · round 2"), speaking
    screenshot(page, "team_live")
    wait_state(page, "complete", timeout=30_000)
    at_rest(page, "complete")
    turns = page.locator("#transcript li")
    assert turns.count() == 6  # the opening, two rounds of two, the summary
    whos = [turns.nth(n).locator(".who").inner_text() for n in range(6)]
    assert whos == ["Rhetor · opening", "Brunel · round 1", "Socrates · round 1", "Brunel · round 2",
                    "Socrates · round 2", "Rhetor · summary after round 2"]
    assert page.locator("#transcript li.summary").count() == 1
    # The summary is where the eye lands: the answer box at the top, highlighted.
    assert page.inner_text("#answer").startswith("Rhetor · summary after round 2")
    assert page.get_attribute("#answer", "class") == "summary"
    assert page.eval_on_selector("#answer", "a => a.getBoundingClientRect().top < innerHeight / 2")
    # A short page, and no stretched, empty controls column beside it.
    assert page.evaluate("document.documentElement.scrollHeight < 3 * innerHeight")
    gap = page.eval_on_selector("main > section:not([hidden])", """el => el.getBoundingClientRect().bottom
        - el.lastElementChild.getBoundingClientRect().bottom""")
    assert gap < 40, gap
    screenshot(page, "team_done")
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
    at_rest(page, "stopped")
    assert page.inner_text("#stage") == "stopped"

    # Stopped in the middle of a team turn: the turn says it was cut short, nothing keeps moving.
    page.select_option("#tool", "OrchestrateTeamChatStream")
    page.fill("#arg-topic", "Stop me")
    page.fill("#arg-rounds", "3")
    page.click("[data-testid=run]")
    # Pressed in the same task that sees a turn being spoken (from Python, the turn could end first).
    page.wait_for_function("""() => document.querySelector('#transcript li.live')
                                    && (document.getElementById('stop').click(), true)""")
    wait_state(page, "stopped")
    at_rest(page, "stopped")
    assert "cut short (stopped)" in page.locator("#transcript li.failed").last.inner_text()
    screenshot(page, "stopped")
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

    at_rest(page, "complete")
    screenshot(page, "keyed")

    # The key stays for this tab: a reload needs no new prompt.
    page.reload()
    page.wait_for_selector("body[data-ready='1']")
    assert page.is_hidden("#key-panel")
    page.close()
