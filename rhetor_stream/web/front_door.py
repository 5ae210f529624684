"""The one pass every request makes before its handler, in one coroutine frame: the security checks
(`web.guard`), a place under `--max-streams` for the handlers that stream or run a tool
(`web.capacity`), and every error a handler raises answered as JSON (`web.errors`).

Why the handlers are wrapped where they are routed rather than given an aiohttp middleware: an app
with any middleware makes aiohttp add one of its own to every request (`_fix_request_current_app`)
and look the chain up per request; side by side, that cost 25-75 us of CPU and 0.03-0.08 ms before
the first event of a `POST /stream` (three shuffled A/B runs), and ~200 bytes per open stream by
tracemalloc (a coroutine frame that lives as long as the stream). One pass rather than a wrapper
per concern for the same reason. The order is the one the separate checks always had: the security
checks refuse a request before it takes a place, and every refusal, from any of them, becomes the
same JSON error.

A request that matches no route still passes the door: the last route (`FrontDoor.unmatched`) takes
every method on every path and answers 404, or 405 with `Allow` when another route has the path.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection

from aiohttp import web

from rhetor_stream.web import guard
from rhetor_stream.web.capacity import CAPACITY, SLOT
from rhetor_stream.web.errors import error_answer

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class FrontDoor:
    """Routes `app`'s requests through the door. Handlers in `limited` take a place under
    `--max-streams` while they run, and those in `detaching`, which may hand it on to a detached run,
    find it on the request (SLOT). Only they: a request's state dict costs 160 bytes once it holds
    anything, for as long as the request, and most limited requests are open streams."""

    def __init__(self, app: web.Application, *, limited: Collection[Handler], detaching: Collection[Handler]) -> None:
        self._router = app.router
        self._limited = limited
        self._detaching = detaching

    def get(self, path: str, handler: Handler, *, head: bool = True) -> web.AbstractRoute:
        """A GET route, and HEAD on it unless `head` is False: an event stream has no HEAD (aiohttp
        sends whatever a handler writes, so a HEAD answered by a stream got its events as a body,
        which the client reads as the start of its next response)."""
        return self._router.add_get(path, self._through(handler), allow_head=head)

    def post(self, path: str, handler: Handler) -> web.AbstractRoute:
        return self._router.add_post(path, self._through(handler))

    def delete(self, path: str, handler: Handler) -> web.AbstractRoute:
        return self._router.add_delete(path, self._through(handler))

    def unmatched(self) -> None:
        """The last route: any method on any path no other route took (added after all of them)."""
        self._router.add_route("*", "/{path:.*}", self._through(_refuse))

    def _through(self, handler: Handler) -> Handler:
        limited = handler in self._limited
        detaching = handler in self._detaching

        async def front_door(request: web.Request) -> web.StreamResponse:
            try:
                guard.check_request(request)
                try:
                    slot = None
                    if limited:
                        slot = request.app[CAPACITY].take(request.remote or "")
                        if detaching:
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


async def _refuse(request: web.Request) -> web.StreamResponse:
    """No route took the request: 405 with the methods its path has, else 404. (Only this route
    matches both path and method here: any other that did would have taken the request.)"""
    allowed: set[str] = set()
    for resource in request.app.router.resources():
        match, methods = await resource.resolve(request)
        if match is None:
            allowed |= methods
    if allowed:
        raise web.HTTPMethodNotAllowed(request.method, allowed)
    raise web.HTTPNotFound()
