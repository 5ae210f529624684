"""What the handlers share, kept under one typed application key."""
from __future__ import annotations

from pathlib import Path

import attrs
from aiohttp import web

from rhetor_stream.runs import RunManager
from rhetor_stream.settings import Settings
from rhetor_stream.stream.activity import Activity
from rhetor_stream.stream.supervisor import StreamSupervisor
from rhetor_stream.tools.registry import ToolRegistry


@attrs.define
class AppState:
    settings: Settings
    tools: ToolRegistry
    supervisor: StreamSupervisor
    static_dir: Path
    runs: RunManager
    activity: Activity = attrs.Factory(Activity)


STATE = web.AppKey("rhetor_stream", AppState)
