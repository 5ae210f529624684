"""Packaging: every package ships, and so do the page and the default roster."""
from __future__ import annotations

import configparser
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_setup_cfg_lists_every_package() -> None:
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    listed = set(config["options"]["packages"].split())
    on_disk = {".".join(path.parent.relative_to(ROOT).parts) for path in (ROOT / "rhetor_stream").rglob("__init__.py")}
    assert on_disk | {"rhetor_stream.static"} == listed
    assert (ROOT / "static" / "streaming_client.html").is_file()
    assert (ROOT / "rhetor_stream" / "data" / "specialists.toml").is_file()
