"""sse-starlette on uvicorn (uvloop and httptools when installed), an async generator per stream."""
from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator

import orjson
import uvicorn
from sse_starlette.sse import EventSourceResponse, ServerSentEvent
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route

from bench.workload import PATH, RETRY_MS, announce, events, parse_query


async def stream(request: Request) -> EventSourceResponse:
    count, size, interval = parse_query(request.query_params)

    async def generate() -> AsyncIterator[ServerSentEvent]:
        for number, (event, data) in enumerate(events(count, size), start=1):
            if event == "chunk" and interval and number > 3:
                await asyncio.sleep(interval)
            yield ServerSentEvent(data=orjson.dumps(data).decode(), id=str(number), event=event,
                                  retry=RETRY_MS if number == 1 else None)

    return EventSourceResponse(generate(), headers={"X-Accel-Buffering": "no"})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    port = parser.parse_args().port
    announce(port)
    uvicorn.run(Starlette(routes=[Route(PATH, stream)]), host="127.0.0.1", port=port, log_level="warning",
                access_log=False, loop="auto", http="auto")


if __name__ == "__main__":
    main()
