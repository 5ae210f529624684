"""Command line entry point: parse settings, serve, and shut down cleanly on SIGINT/SIGTERM."""
from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Sequence

from aiohttp import web

from rhetor_stream.settings import Settings, SettingsError
from rhetor_stream.web.app import create_app

log = logging.getLogger("rhetor_stream")


def main(argv: Sequence[str] | None = None) -> None:
    try:
        settings = Settings.from_sources(argv)
    except SettingsError as exc:
        print(f"rhetor_stream: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    logging.basicConfig(level=settings.log_level_number,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if settings.log_level != "debug":
        logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    try:
        asyncio.run(serve(settings))
    except OSError as exc:
        print(f"rhetor_stream: error: cannot listen on {settings.host}:{settings.port}: {exc.strerror}",
              file=sys.stderr)
        raise SystemExit(1) from None


async def serve(settings: Settings) -> None:
    """Serve until SIGINT or SIGTERM, then end open streams and exit."""
    runner = web.AppRunner(create_app(settings), handle_signals=False,
                           shutdown_timeout=settings.shutdown_timeout, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port)
    try:
        await site.start()
        host, port = runner.addresses[0][:2]
        shown = f"[{host}]" if ":" in host else host
        print(f"Serving on http://{shown}:{port}", flush=True)
        print(f"Interactive page: http://{shown}:{port}/", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()
        log.info("shutting down")
    finally:
        await runner.cleanup()
