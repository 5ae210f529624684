"""Command line entry point: parse settings, serve, and shut down cleanly on SIGINT/SIGTERM."""
from __future__ import annotations

import asyncio
import gc
import logging
import multiprocessing
import multiprocessing.connection
import os
import queue
import signal
import socket
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import attrs
from aiohttp import web

from rhetor_stream.errors import RhetorError
from rhetor_stream.settings import PROVIDERS, Settings, SettingsError
from rhetor_stream.specialists.roster import load_roster
from rhetor_stream.web.app import create_app, runner_options, served_tools
from rhetor_stream.web.capacity import QuietLog, raise_open_file_limit

# A worker that dies within _STEADY_AFTER seconds of its start, _QUICK_DEATHS times in a row, is not
# going to come up (bad port, unreachable store): stop instead of restarting it for ever.
_STEADY_AFTER = 10.0
_QUICK_DEATHS = 3

log = logging.getLogger("rhetor_stream")


def main(argv: Sequence[str] | None = None) -> None:
    try:
        settings = Settings.from_sources(argv)
        # Checked here too (the app checks them again), so --workers says a problem once, not per worker.
        served_tools(settings.tools)
        load_roster(settings.specialists, PROVIDERS)
    except SettingsError as exc:
        print(f"rhetor_stream: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    if settings.workers > 1:
        run_workers(settings)
    else:
        _run(settings)


def _run(settings: Settings, ready: Any = None) -> None:
    """One server process, with start-up problems said in one line instead of a traceback."""
    logging.basicConfig(level=settings.log_level_number,
                        format="%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s")
    if settings.log_level != "debug":
        logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    try:
        if ready is None:
            asyncio.run(serve(settings, on_ready=_announce))
        else:  # a worker: tell the parent, which announces once every worker listens
            asyncio.run(serve(settings, reuse_port=True, on_ready=lambda host, port: ready.put(os.getpid())))
    except OSError as exc:
        print(f"rhetor_stream: error: cannot listen on {settings.host}:{settings.port}: {exc.strerror}",
              file=sys.stderr)
        raise SystemExit(1) from None
    except (RhetorError, RuntimeError) as exc:  # the event store is away or refuses us; no redis package
        print(f"rhetor_stream: error: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    except SettingsError as exc:  # e.g. a bad --specialists file or --tools module
        print(f"rhetor_stream: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


async def serve(settings: Settings, *, reuse_port: bool = False,
                on_ready: Callable[[str, int], None] | None = None) -> None:
    """Serve until SIGINT or SIGTERM, then end open streams and exit."""
    raise_open_file_limit()
    _quiet_accept_errors(asyncio.get_running_loop())
    runner = web.AppRunner(create_app(settings), handle_signals=False, **runner_options(settings))
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port, reuse_port=reuse_port,
                       backlog=settings.listen_backlog)
    try:
        await site.start()
        # What exists once the server is up (modules, the app, its tools: ~40,000 objects) lives as
        # long as the process. Frozen, the garbage collector no longer walks it at every full
        # collection, which holds up every stream of the process while it walks.
        gc.collect()
        gc.freeze()
        if on_ready is not None:
            host, port = runner.addresses[0][:2]
            on_ready(host, port)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()
        log.info("shutting down")
    finally:
        await runner.cleanup()


def _quiet_accept_errors(loop: asyncio.AbstractEventLoop) -> None:
    """Out of descriptors, Python 3.11's accept loop reports EMFILE with a traceback for every
    pending connection, again and again: one warning per ten seconds says it all."""
    quiet = QuietLog(log)
    previous = loop.get_exception_handler()

    def handle(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if context.get("message") == "socket.accept() out of system resource":
            quiet.warning("cannot accept connections: %s; lower --max-streams or raise the open-file "
                          "limit", context.get("exception"))
        elif previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handle)


def _announce(host: str, port: int, workers: int = 1) -> None:
    shown = f"[{host}]" if ":" in host else host
    suffix = f" ({workers} worker processes)" if workers > 1 else ""
    print(f"Serving on http://{shown}:{port}{suffix}", flush=True)
    print(f"Interactive page: http://{shown}:{port}/", flush=True)


def run_workers(settings: Settings) -> None:
    """`--workers N`: N processes accept on one port (SO_REUSEPORT); the kernel spreads connections.

    With `--port 0` the parent picks the port by binding it (SO_REUSEPORT, never listening), so every
    worker can bind the same one.
    """
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    holder = socket.socket(family, socket.SOCK_STREAM)
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    holder.bind((settings.host, settings.port))
    port = holder.getsockname()[1]
    pool = WorkerPool(attrs.evolve(settings, port=port))
    signal.signal(signal.SIGINT, pool.stop)
    signal.signal(signal.SIGTERM, pool.stop)
    if pool.all_listening():
        _announce(settings.host, port, settings.workers)
    else:  # a worker could not start (it said why): the others stop too
        pool.stop()
    healthy = pool.supervise()
    holder.close()
    if not healthy:
        raise SystemExit(1)


class WorkerPool:
    """The processes of `--workers N`. SIGINT/SIGTERM are passed on to them, and they shut down
    cleanly on their own. One that dies otherwise (killed, out of memory) is replaced, and the runs
    it left are ended as lost by the others; workers that keep dying right after start stop it all.
    """

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._context = multiprocessing.get_context("spawn")
        self._ready = self._context.Queue()
        self._stopping = False
        self._quick_deaths = 0
        self._started: dict[int | None, float] = {}
        self.workers = [self._start(index) for index in range(settings.workers)]

    def all_listening(self) -> bool:
        """Wait until every worker accepts connections (or one of them failed to start)."""
        waiting = len(self.workers)
        deadline = time.monotonic() + 60
        while waiting and time.monotonic() < deadline and all(worker.is_alive() for worker in self.workers):
            try:
                self._ready.get(timeout=0.1)
                waiting -= 1
            except queue.Empty:
                pass
        return waiting == 0

    def stop(self, *signal_args: object) -> None:
        """Shut every worker down (a signal handler too)."""
        self._stopping = True
        for worker in self.workers:
            if worker.is_alive() and worker.pid is not None:
                os.kill(worker.pid, signal.SIGTERM)

    def supervise(self) -> bool:
        """Replace workers that die until the pool is stopped; False when something went wrong."""
        while not self._stopping:
            multiprocessing.connection.wait([worker.sentinel for worker in self.workers])
            for index, worker in enumerate(self.workers):
                if not self._stopping and not worker.is_alive():
                    self._replace(index, worker)
        for worker in self.workers:
            worker.join()
        return self._quick_deaths < _QUICK_DEATHS and not any(worker.exitcode for worker in self.workers)

    def _replace(self, index: int, dead: multiprocessing.process.BaseProcess) -> None:
        lived = time.monotonic() - self._started.pop(dead.pid, 0.0)
        self._quick_deaths = self._quick_deaths + 1 if lived < _STEADY_AFTER else 0
        if self._quick_deaths >= _QUICK_DEATHS:
            print(f"rhetor_stream: error: workers keep exiting at start (last exit code {dead.exitcode}); "
                  "stopping", file=sys.stderr)
            self.stop()
            return
        print(f"rhetor_stream: worker {dead.pid} exited with code {dead.exitcode}; starting a replacement",
              file=sys.stderr, flush=True)
        self.workers[index] = self._start(index)
        if self._stopping:  # a signal came while it started: it missed the SIGTERM
            self.stop()

    def _start(self, index: int) -> multiprocessing.process.BaseProcess:
        worker = self._context.Process(target=_run, args=(self._settings, self._ready),
                                       name=f"rhetor_stream worker {index}")
        worker.start()
        self._started[worker.pid] = time.monotonic()
        return worker
