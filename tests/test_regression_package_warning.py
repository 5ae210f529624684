"""Regression: every install printed setuptools' 40-line "Package would be ignored" warning about
rhetor_stream.data. Builds a wheel from a copy of the sources and checks it is quiet and complete."""
from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.conftest import ROOT


def test_building_the_wheel_is_quiet_and_ships_the_data(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    for name in ("setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for name in ("rhetor_stream", "static"):
        shutil.copytree(ROOT / name, source / name, ignore=ignore)
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-v", "-w", str(tmp_path / "dist"),
                           str(source)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "would be ignored" not in done.stdout + done.stderr
    wheel = next((tmp_path / "dist").glob("rhetor_stream-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "rhetor_stream/data/specialists.toml" in names and "rhetor_stream/static/streaming_client.html" in names
