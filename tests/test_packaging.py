"""Packaging: every package ships, and so do the page and the default roster."""
from __future__ import annotations

import configparser
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_setup_cfg_lists_every_package() -> None:
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    listed = set(config["options"]["packages"].split())
    # Every directory that ships: packages, and directories of data files (importable as namespace
    # packages, so setuptools warns about any that is not listed).
    on_disk = {".".join(path.parent.relative_to(ROOT).parts) for path in (ROOT / "rhetor_stream").rglob("*")
               if path.is_file() and "__pycache__" not in path.parts}
    assert on_disk | {"rhetor_stream.static"} == listed
    assert (ROOT / "static" / "streaming_client.html").is_file()
    assert (ROOT / "rhetor_stream" / "data" / "specialists.toml").is_file()
