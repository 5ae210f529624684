"""`python -m bench.stress --quick` runs end to end: one small attack against a real server process.

The verdict is not checked here (it is FAIL before the fixes of issue 9 and PASS after): this only
proves the harness starts a server, reads its port, attacks it, prints its row and cleans up.
"""
from __future__ import annotations

import re
import subprocess
import sys

from tests.conftest import ROOT


def test_quick_stress_run_prints_its_row() -> None:
    done = subprocess.run([sys.executable, "-m", "bench.stress", "--quick"], cwd=ROOT, capture_output=True,
                          text=True, timeout=90)
    assert done.returncode == 0, done.stderr
    assert "| attack | figure | target | verdict |" in done.stdout
    assert re.search(r"^\| runs left after 20 early closes \(memory store\) \| \d+ running .*\| 0 \| (PASS|FAIL) \|$",
                     done.stdout, re.MULTILINE), done.stdout
    assert re.search(r"^elapsed \d+ s$", done.stdout, re.MULTILINE)
