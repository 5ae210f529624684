"""What is running right now, counted where it starts and ends: `/health` reports it, and tests use
it to prove that cancellation stops the work."""
from __future__ import annotations

import attrs


@attrs.define
class Activity:
    """Live counters for `/health` and for tests that prove cancellation works."""

    active_streams: int = 0
    active_tools: int = 0
