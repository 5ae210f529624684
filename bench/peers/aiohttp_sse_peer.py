"""aiohttp-sse, used as its documentation shows: `sse_response` and `send` per event."""
from __future__ import annotations

import argparse
import asyncio

import orjson
from aiohttp import web
from aiohttp_sse import sse_response

from bench.workload import PATH, RETRY_MS, announce, events, parse_query


async def stream(request: web.Request) -> web.StreamResponse:
    count, size, interval = parse_query(request.query)
    async with sse_response(request, headers={"X-Accel-Buffering": "no"}) as response:
        for number, (event, data) in enumerate(events(count, size), start=1):
            if event == "chunk" and interval and number > 3:
                await asyncio.sleep(interval)
            await response.send(orjson.dumps(data).decode(), id=str(number), event=event,
                                retry=RETRY_MS if number == 1 else None)
    return response


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    port = parser.parse_args().port
    app = web.Application()
    app.router.add_get(PATH, stream)
    announce(port)
    # The same listen queue as rhetor_stream (uvicorn, for sse-starlette, has 2048): 1000 clients connect at once.
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None, backlog=1024)


if __name__ == "__main__":
    main()
