"""One watcher for all open streams: vanished clients, stalled clients, heartbeats, shutdown.

aiohttp does not cancel a handler when its client disconnects (unless the runner is told to), and a
write only fails on the *next* write after the peer is gone, so a tool that is thinking (or an LLM
that is slow) would keep running, and keep costing tokens, for a client that left long ago. Instead
of one watcher task per stream (memory per open stream is a product figure), a single periodic sweep
checks every stream's transport and write clock. A sweep over thousands of streams costs
microseconds per stream, and the sweep period bounds how late a disconnect is noticed.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from aiohttp import web

from rhetor_stream.tasks import cancel_and_wait

log = logging.getLogger("rhetor_stream.supervisor")


class Writes(Protocol):
    """A stream's write clock: when its current write started (None: none is waiting) and when the
    last one ended; `heartbeat` asks it to send a ping."""

    write_started: float | None
    last_write: float

    def heartbeat(self) -> None: ...


class Watched(Protocol):
    """What the supervisor needs from a stream (or a plain JSON call) it looks after."""

    @property
    def request(self) -> web.BaseRequest: ...

    @property
    def writes(self) -> Writes | None: ...

    def drop(self, reason: str) -> None: ...

    async def wait_closed(self) -> None: ...


class StreamSupervisor:
    """Sweeps the open streams every `poll` seconds; ends them all on shutdown."""

    def __init__(self, *, poll: float, send_timeout: float, heartbeat: float) -> None:
        self._poll = poll
        self._send_timeout = send_timeout
        self._heartbeat = heartbeat
        self._watched: set[Watched] = set()
        self._task: asyncio.Task[None] | None = None

    def watch(self, item: Watched) -> None:
        self._watched.add(item)

    def forget(self, item: Watched) -> None:
        self._watched.discard(item)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="rhetor_stream supervisor")

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)
            self._task = None

    async def shutdown(self, timeout: float, *, grace: float) -> None:
        """End every open stream with `server_shutdown` and wait up to `timeout` for them to flush.

        A client that stopped reading never takes its final frames, and its handler would hold the
        process well past the shutdown timeout: after `timeout` such connections are aborted, and
        their handlers get `grace` seconds to notice.
        """
        items = list(self._watched)
        if not items:
            return
        log.info("ending %d open stream(s) for shutdown", len(items))
        for item in items:
            item.drop("server_shutdown")
        waits = {asyncio.ensure_future(item.wait_closed()): item for item in items}
        _done, pending = await asyncio.wait(waits, timeout=timeout)
        if pending:
            log.warning("%d stream(s) did not end within %.1fs of shutdown; closing their connections",
                        len(pending), timeout)
            for waiting in pending:
                transport = waits[waiting].request.transport
                if transport is not None:
                    transport.abort()
            await asyncio.wait(pending, timeout=grace)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self._poll)
            self.sweep(loop.time())

    def sweep(self, now: float) -> None:
        """Check each stream once: gone, stalled, or idle long enough for a heartbeat."""
        for item in list(self._watched):
            transport = item.request.transport
            if transport is None or transport.is_closing():
                item.drop("client_disconnected")
                continue
            writes = item.writes
            if writes is None:
                continue
            started = writes.write_started
            if started is not None and now - started > self._send_timeout:
                log.info("dropping a client that read nothing for %.1fs", now - started)
                item.drop("send_timeout")
                transport.abort()
            elif self._heartbeat and started is None and now - writes.last_write >= self._heartbeat:
                writes.heartbeat()
