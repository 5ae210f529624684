"""Shared fixtures. Real components (Redis, Chromium) are required in CI and optional locally."""
from __future__ import annotations

import os
import shutil

import pytest

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def require_binary(name: str, why: str) -> str:
    """Return the path of `name`; fail in CI (where .ci/run installs it) and skip locally without it."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} not found: {why} (install it with: apt-get install -y {name})"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return path
