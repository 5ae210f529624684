"""Regression: every followed `Wait` logged one "Wait is running" tick just before its first report.

A plain tool's "still running" tick came at whole ticks after the start, and Wait reports at whole
seconds too, a moment later (its sleep starts after the tick is armed): at the first tick the tool
had not yet said anything, so the tick went out, and the tool's report right after it. One redundant
progress event in every such run's log and stream (memory per open run). Now the ticks come half a
tick out of phase (1.5, 2.5, ... ticks after the start), so a tool reporting on whole ticks is never
interrupted; a tool that says nothing still gets them (tests/test_regression_double_progress.py).
"""
from __future__ import annotations

from typing import Any

from rhetor_stream.settings import Settings
from rhetor_stream.web.app import create_app
from tests.conftest import FAST, post_stream


async def test_a_waiting_run_gets_no_tick_before_its_first_report(aiohttp_client: Any) -> None:
    client = await aiohttp_client(create_app(Settings(**{**FAST, "processing_tick": 1.0})))
    events = await post_stream(client, "Wait", {"seconds": 2})
    progress = [event.json()["message"] for event in events if event.event == "progress"]
    assert [message for message in progress if message.endswith(" is running")] == [], progress
    assert [message for message in progress if message.startswith("waited ")] == [
        "waited 1.0 of 2 s", "waited 2.0 of 2 s"], progress
