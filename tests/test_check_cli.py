"""The check CLI against a real server process, and against nothing."""
from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.conftest import ROOT, free_port, spawn_server, stop_server


@pytest.fixture
def server_url() -> Iterator[str]:
    process, url = spawn_server("--simulated-tokens-per-s", "2000")
    yield url
    stop_server(process)


def check(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rhetor_stream.check", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)


def test_all_checks_pass_against_a_real_server(server_url: str) -> None:
    result = check("--url", server_url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed, 0 failed" in result.stdout
    assert "progress [" in result.stdout and "message  " in result.stdout and "chunk    " in result.stdout


def test_unreachable_server_is_exit_2_with_a_clear_message() -> None:
    result = check("--url", f"http://127.0.0.1:{free_port()}", "--test", "basic")
    assert result.returncode == 2
    assert "cannot reach a rhetor_stream server" in result.stderr and "Traceback" not in result.stderr


def test_problems_are_found() -> None:
    from rhetor_stream.check import problems
    from rhetor_stream.client import StreamEvent

    good = [StreamEvent("connected", "r-1", {"run_id": "r", "tool_name": "t", "timestamp": "", "message": ""}),
            StreamEvent("complete", "r-2", {"result": 1, "execution_time": 0.1, "timestamp": "", "message": ""}),
            StreamEvent("disconnect", "r-3", {"message": "", "timestamp": ""})]
    assert problems(good) == []
    assert any("strictly increasing" in p for p in problems([good[0], good[2], good[1]]))
    assert any("lacks" in p for p in problems([good[0], StreamEvent("chunk", "r-2", {}), *good[1:]]))
    assert any("exactly one" in p for p in problems([good[0], good[2]]))
