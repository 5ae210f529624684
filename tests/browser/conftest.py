"""Real headless Chromium (Debian's package) driven by Playwright, against a real server process."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import IN_CI, ROOT, require_binary, spawn_server, stop_server

ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic",
                 "--no-first-run", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    executable = require_binary("chromium", "the browser tests drive a real headless Chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if IN_CI:
            pytest.fail("playwright is not installed (it is in the test extra)")
        pytest.skip("playwright is not installed: pip install -e '.[test]'")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def server() -> Iterator[str]:
    process, url = spawn_server("--simulated-tokens-per-s", "300", "--retry-ms", "300", "--disconnect-poll", "0.02")
    yield url
    stop_server(process)
