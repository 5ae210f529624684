"""Regression: a bad --specialists file ended start-up in a ~30-line traceback; like every other
start-up error it is now one line naming the file and the problem."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT


def test_a_bad_roster_file_is_one_line(tmp_path: Path) -> None:
    roster = tmp_path / "team.toml"
    roster.write_text("[[specialist]]\nid = 'a'\nname = \n")
    done = subprocess.run([sys.executable, "-m", "rhetor_stream", "--port", "0", "--specialists", str(roster)],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith(f"rhetor_stream: error: {roster}: ") and "line 3" in done.stderr
