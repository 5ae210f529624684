"""Real headless Chromium (Debian's package) driven by Playwright, against a real server process."""
from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import IN_CI, require_binary

ROOT = Path(__file__).resolve().parents[2]
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
    process = subprocess.Popen([sys.executable, "-m", "rhetor_stream", "--port", "0", "--simulated-tokens-per-s",
                                "300", "--retry-ms", "300", "--disconnect-poll", "0.02"], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert process.stdout is not None
    match = re.search(r"(http://127\.0\.0\.1:\d+)", process.stdout.readline())
    assert match
    yield match.group(1)
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=10)


class CuttingProxy:
    """A TCP proxy that cuts the first run-events connection after `cut_after` bytes of the answer,
    as a flaky proxy or a sleeping laptop would; every later connection passes untouched."""

    def __init__(self, upstream_port: int, cut_after: int) -> None:
        self.upstream_port = upstream_port
        self.cut_after = cut_after
        self.cuts = 0
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> CuttingProxy:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    async def _handle(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        first = await client_reader.read(65536)
        cut = b"/events" in first.split(b"\r\n", 1)[0] and self.cuts == 0
        if cut:
            self.cuts += 1
        upstream_writer.write(first)

        async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, limit: int | None) -> None:
            sent = 0
            try:
                while data := await reader.read(65536):
                    if limit is not None and sent + len(data) >= limit:
                        writer.write(data[:max(0, limit - sent)])
                        break
                    writer.write(data)
                    sent += len(data)
                    await writer.drain()
            except ConnectionError:
                pass
            finally:
                writer.close()

        await asyncio.gather(pipe(client_reader, upstream_writer, None),
                             pipe(upstream_reader, client_writer, self.cut_after if cut else None))
