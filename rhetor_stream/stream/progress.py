"""Progress events that are honest and cheap: throttled, latest-wins, final never dropped.

A tool may report progress far more often than a person (or a network) can use it. At most one
progress event per interval goes out; a report that arrives too soon is held and replaced by any
newer one, and the held report is sent when the interval is up, so the client always ends up
seeing the latest state. A final report (100%, `finalizing`) bypasses the throttle.
"""
from __future__ import annotations

import asyncio
from typing import Any

from rhetor_stream.stream.channel import EventSink

PROGRESS = "progress"


class ProgressThrottle:
    """Rate-limits one stream's progress events and stamps them with the run's elapsed time."""

    __slots__ = ("_sink", "_interval", "_started", "_loop", "_last_sent", "_pending", "_timer")

    def __init__(self, sink: EventSink, *, interval: float, started: float) -> None:
        self._sink = sink
        self._interval = interval
        self._started = started
        self._loop = asyncio.get_running_loop()
        self._last_sent = -interval
        self._pending: dict[str, Any] | None = None
        self._timer: asyncio.TimerHandle | None = None

    async def report(self, stage: str, percentage: float | None, message: str, *,
                     final: bool = False, **extra: Any) -> None:
        """Send now if the interval allows (or `final`), otherwise hold as the latest report."""
        data = self._data(stage, percentage, message, extra)
        if final or self._due():
            self._cancel_pending()
            await self._sink.send(PROGRESS, self._stamp(data))
        else:
            self._hold(data)

    def post(self, stage: str, percentage: float | None, message: str, **extra: Any) -> None:
        """Like `report`, for timer callbacks that cannot wait: held when the queue is full."""
        data = self._data(stage, percentage, message, extra)
        if not (self._due() and self._offer(data)):
            self._hold(data)

    def close(self) -> None:
        """Drop any held report; the run is over and its final word is already on its way."""
        self._cancel_pending()

    def _cancel_pending(self) -> None:
        self._pending = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _data(self, stage: str, percentage: float | None, message: str,
              extra: dict[str, Any]) -> dict[str, Any]:
        return {"stage": stage, "percentage": percentage, "message": message, **extra}

    def _due(self) -> bool:
        return self._loop.time() - self._last_sent >= self._interval

    def _stamp(self, data: dict[str, Any]) -> dict[str, Any]:
        now = self._loop.time()
        self._last_sent = now
        data["elapsed"] = round(now - self._started, 3)
        return data

    def _offer(self, data: dict[str, Any]) -> bool:
        last_sent = self._last_sent
        if self._sink.offer(PROGRESS, self._stamp(data)):
            return True
        self._last_sent = last_sent
        return False

    def _hold(self, data: dict[str, Any]) -> None:
        self._pending = data
        if self._timer is None:
            when = max(self._loop.time(), self._last_sent + self._interval)
            self._timer = self._loop.call_at(when, self._flush)

    def _flush(self) -> None:
        self._timer = None
        data = self._pending
        if data is None:
            return
        if self._offer(data):
            self._pending = None
        else:
            # The client is behind; try again after another interval, still latest-wins.
            self._timer = self._loop.call_later(self._interval, self._flush)
