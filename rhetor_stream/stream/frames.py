"""The frames every stream starts and ends with, built in one place: the timestamps they carry, the
final `complete` or `error` and the `disconnect` that says why the stream ended.

A run's own events come from its tool; these are the server's, and every way a stream can end (a
result, an error of the vocabulary, a stop, an expired log) ends it through `ending`.
"""
from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from rhetor_stream.errors import RhetorError
from rhetor_stream.stream.channel import Item


def timestamp() -> str:
    """ISO 8601 UTC with milliseconds: readable in logs and parseable by `Date` in browsers.

    Several events of every run carry one (`connected` among them), so the date and time up to
    the second are formatted once a second, not per event (datetime's isoformat costs ~3x this)."""
    global _second
    now = time.time()
    second = int(now)
    if second != _second[0]:
        _second = second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
    return f"{_second[1]}.{int((now - second) * 1000):03d}Z"


_second = (-1, "")  # the second `timestamp` last formatted, and its text


def ending(event: str, data: dict[str, Any], reason: str) -> tuple[Item, Item]:
    """The last two frames of every stream: its outcome, then `disconnect` saying why it ended."""
    return (event, data), ("disconnect", {
        "message": _DISCONNECT_MESSAGES.get(reason, f"Stream ended: {reason.replace('_', ' ')}"),
        "reason": reason, "timestamp": timestamp()})


def error_frames(error: RhetorError, *, reason: str = "error", tool_name: str | None = None) -> tuple[Item, Item]:
    """The one way an error of the vocabulary ends a stream: an `error` event with the fields its JSON
    error would have (message, code, details), then `disconnect` saying `reason`."""
    return failure(error.public_message, error.code, reason, tool_name=tool_name, details=error.details)


def failure(message: str, code: str, reason: str, *, tool_name: str | None = None,
            details: Mapping[str, Any] | None = None) -> tuple[Item, Item]:
    """The last two frames of a stream that failed or was stopped (`error_frames` for an error)."""
    data: dict[str, Any] = {"error": message, "code": code}
    if tool_name is not None:
        data["tool_name"] = tool_name
    if details:
        data.update(details)
    data["timestamp"] = timestamp()
    return ending("error", data, reason)


_DISCONNECT_MESSAGES = {
    "complete": "Stream complete",
    "error": "Stream ended after an error",
    "server_shutdown": "Server is shutting down",
}
