"""Regression: `--host 0.0.0.0` with no API key started without a word, serving every tool (and the
operator's LLM budget) to anyone who could reach the port."""
from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT


def test_an_open_non_loopback_bind_refuses_to_start_in_one_line() -> None:
    result = subprocess.run([sys.executable, "-m", "rhetor_stream", "--host", "0.0.0.0", "--port", "0"],
                            cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "--allow-unauthenticated" in lines[0] and "--api-key" in lines[0]
