"""The one middleware every request passes, in one coroutine frame: the security checks
(`web.guard`), a place under `--max-streams` for the handlers that stream or run a tool
(`web.capacity`), and every error a handler raises answered as JSON (`web.errors`).

One pass rather than a middleware each: a middleware is a coroutine frame that stays alive for as
long as its request, and an open stream lasts for hours (memory per open stream is a product
figure); each one also costs a call on the way to every first byte. The order is the order the
separate middlewares had: the security checks refuse a request before it takes a place, and every
refusal, from any of them, becomes the same JSON error.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection
from typing import Any

from aiohttp import web

from rhetor_stream.web import guard
from rhetor_stream.web.capacity import CAPACITY, SLOT
from rhetor_stream.web.errors import error_answer

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def front_door(limited: Collection[Handler], detaching: Collection[Handler]) -> Any:
    """The middleware; the handlers in `limited` take a place under `--max-streams` while they run,
    and those in `detaching`, which may hand it on to a detached run, find it on the request (SLOT).
    Only they: a request's state dict costs 160 bytes once it holds anything, for as long as the
    request, and most limited requests are open streams."""

    @web.middleware
    async def front_door(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            guard.check_request(request)
            try:
                slot = None
                if request.match_info.handler in limited:
                    slot = request.app[CAPACITY].take(request.remote or "")
                    if request.match_info.handler in detaching:
                        request[SLOT] = slot
                try:
                    return await handler(request)
                finally:
                    if slot is not None and not slot.kept:
                        slot.release()
            finally:
                guard.release_run_slot(request)
        except Exception as exc:
            answer = error_answer(request, exc)
            if answer is None:
                raise
            return answer

    return front_door
