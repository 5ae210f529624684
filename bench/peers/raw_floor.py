"""The floor: a bare aiohttp StreamResponse writing pre-encoded frames, one write per event."""
from __future__ import annotations

import argparse
import asyncio

import orjson
from aiohttp import web

from bench.workload import PATH, RETRY_MS, announce, events, parse_query


async def stream(request: web.Request) -> web.StreamResponse:
    count, size, interval = parse_query(request.query)
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                                           "X-Accel-Buffering": "no"})
    await response.prepare(request)
    for number, (event, data) in enumerate(events(count, size), start=1):
        if event == "chunk" and interval and number > 3:
            await asyncio.sleep(interval)
        retry = b"retry: %d\n" % RETRY_MS if number == 1 else b""
        await response.write(b"id: %d\nevent: %s\n%sdata: %s\n\n" % (number, event.encode(), retry,
                                                                      orjson.dumps(data)))
    await response.write_eof()
    return response


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    app = web.Application()
    app.router.add_get(PATH, stream)
    announce(parser.parse_args().port)
    # The same listen queue as rhetor_stream (uvicorn, for sse-starlette, has 2048): 1000 clients connect at once.
    web.run_app(app, host="127.0.0.1", port=parser.parse_args().port, print=None, access_log=None,
                backlog=1024)


if __name__ == "__main__":
    main()
