"""Run endpoints. `POST /api/mcp/v2/stream` is here: every streamed tool call is a run, whose first
subscriber is the request itself. Also: start detached runs, follow (and resume) any run's events,
a run's status, and cancel.

While the event store is away (Redis restarting), a stream that is open stays open: it waits for the
store with heartbeats, and its run goes on (see `RunManager.forward` and the Redis store). A client
that opens a run's events meanwhile gets the same: a 200 stream that waits, not a 503, because a
browser's `EventSource` never reconnects after a status other than 200; it keeps its place
(`Last-Event-ID`), and once the store is back it gets the events after it, or a clean end if the run
turns out to be unknown (its reconnect then gets the 204 that stops it). Requests that answer in
JSON (`POST`, status, cancel) get `503 event_store_unavailable` meanwhile: their callers can retry.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from contextlib import suppress

from aiohttp import web

from rhetor_stream.api import API
from rhetor_stream.errors import RhetorError
from rhetor_stream.runs import id_prefix
from rhetor_stream.runs.manager import LocalRun, Resume, as_logged
from rhetor_stream.runs.store import FINAL_STATUSES, StoredEvent, StoreUnavailable
from rhetor_stream.sse.ids import EventId, InvalidEventId, shown
from rhetor_stream.stream.frames import error_frames
from rhetor_stream.stream.run import RUN_ID_SHAPE, is_run_id
from rhetor_stream.web import guard
from rhetor_stream.web.capacity import SLOT
from rhetor_stream.web.errors import ApiError, json_response
from rhetor_stream.web.requests import read_tool_call
from rhetor_stream.web.state import STATE
from rhetor_stream.web.streams import (
    CLIENT_GONE,
    SSE_HEADERS,
    EventFrames,
    EventStreamResponse,
    Frames,
    RunFollower,
    retry_hint,
)

log = logging.getLogger("rhetor_stream.runs")
# Seconds a follower waits for new events before it checks that its run still exists.
_POLL = 5.0


def events_url(run_id: str) -> str:
    return f"{API}/runs/{run_id}/events"


def _events_url(request: web.Request, run_id: str) -> str:
    return guard.with_run_token(request, events_url(run_id), run_id)


async def stream_as_run(request: web.Request) -> web.StreamResponse:
    """POST /api/mcp/v2/stream: a run whose first subscriber is this request."""
    run = await _new_run(request, detached=False)
    guard.hold_slot(request, run)
    # Where to resume: a browser can hand it to EventSource (with keys it carries the run token).
    return await follow(request, run.run_id, 0, local=run, backpressure=True,
                        events_url=_events_url(request, run.run_id))


async def start_run(request: web.Request) -> web.Response:
    """POST /api/mcp/v2/runs: start a detached run and say where to read it."""
    slot = request[SLOT]
    run = await _new_run(request, detached=True)
    slot.keep()  # a detached run holds its place until it ends, not until this answer is sent
    run.when_done(slot.release)
    guard.hold_slot(request, run)
    return json_response({"run_id": run.run_id, "events_url": _events_url(request, run.run_id),
                          "status_url": f"{API}/runs/{run.run_id}"}, status=202)


async def _new_run(request: web.Request, *, detached: bool) -> LocalRun:
    """The run the request's body asks for, started. A coroutine of its own so that what it reads (the
    body, the tool call) is let go of before the stream: the handler's frame lives as long as its
    stream, and memory per open stream counts."""
    state = request.app[STATE]
    call = await read_tool_call(request, state.tools)
    grace = None if detached else call.options.resume_grace_s or 0.0
    return await state.runs.create(call.tool, call.arguments, call.options, grace=grace)


async def run_events(request: web.Request) -> web.StreamResponse:
    """GET /api/mcp/v2/runs/{run_id}/events: replay after Last-Event-ID, then follow live."""
    state = request.app[STATE]
    run_id = _run_id(request)
    after = _last_event_id(request, run_id)
    try:
        point = await state.runs.resume_point(run_id, after)
        if point in (Resume.UNKNOWN, Resume.COMPLETE):
            return web.Response(status=204)  # an EventSource stops reconnecting on 204
        if point is Resume.BEYOND:
            raise ApiError(400, "invalid_event_id", f"event id {EventId(id_prefix(run_id), after)} is past the "
                           f"end of run {run_id} (it has not sent that many events)", run_id=run_id)
    except StoreUnavailable as exc:  # wait for it in the stream (see the module docstring)
        log.warning("GET %s waits for the event store: %s", request.path, exc)
    return await follow(request, run_id, after, local=state.runs.local(run_id), backpressure=False)


async def run_status(request: web.Request) -> web.Response:
    state = request.app[STATE]
    run_id = _run_id(request)
    record = await state.runs.record_ending_lost(run_id)
    if record is None:
        raise ApiError(404, "unknown_run", f"no run {run_id!r} (finished runs are kept for "
                       f"{state.settings.run_retention:g} s)", run_id=run_id)
    return json_response({"run_id": run_id, "tool_name": record.tool_name, "status": record.status,
                          "created": record.created, "finished": record.finished,
                          "events_url": _events_url(request, run_id)})


async def cancel_run(request: web.Request) -> web.Response:
    state = request.app[STATE]
    run_id = _run_id(request)
    record = await state.runs.record_ending_lost(run_id)
    if record is None:
        raise ApiError(404, "unknown_run", f"no run {run_id!r}", run_id=run_id)
    if record.status in FINAL_STATUSES:
        raise ApiError(409, "run_finished", f"run {run_id} already ended ({record.status})", run_id=run_id)
    await state.runs.cancel(run_id)
    return json_response({"run_id": run_id, "status": "cancelling"}, status=202)


async def follow(request: web.Request, run_id: str, after: int, *, local: LocalRun | None,
                 backpressure: bool, events_url: str | None = None,
                 frames: Callable[[int], Frames] | None = None) -> web.StreamResponse:
    """Stream a run's log after event `after` to this client; `frames(retry_ms)` frames it
    differently (the MCP transport), by default as our events. With `backpressure` (the client that
    started the run) the run waits for this client when it falls behind. `events_url` goes out as the
    X-Events-URL header (it is not kept: every byte an open stream holds counts)."""
    state = request.app[STATE]
    settings = state.settings
    retry_ms = retry_hint(settings)
    response = EventStreamResponse(state, SSE_HEADERS if events_url is None else
                                   {**SSE_HEADERS, "X-Events-URL": events_url})
    del events_url  # this frame lasts as long as the stream
    follower = RunFollower(request, response, frames(retry_ms) if frames is not None else
                           EventFrames(id_prefix(run_id), retry_ms), max_bytes=settings.queue_bytes,
                           local=local is not None)
    recorder = local.recorder if backpressure and local is not None else None
    started = asyncio.get_running_loop().time()
    async with response.serving(follower):
        # Subscribed before the first write: a client that is gone before the headers go out (prepare
        # raises) unsubscribes in the `finally` like any other, so its run does not go on without it.
        state.runs.subscribed(local)
        try:
            await response.prepare(request)
            await state.runs.forward(run_id, after, follower, recorder=recorder,
                                     poll=min(_POLL, settings.heartbeat or _POLL))
        except CLIENT_GONE:
            raise  # the end of the stream, which the response takes care of
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if follower.dropped is None or task is None or task.uncancel():
                raise  # aiohttp's (the client is gone), not the supervisor's
        except Exception as exc:
            # The client's stream must end with an `error` and a `disconnect`, never with a bare end
            # that looks like a cut connection. (The store being away is not a failure: `forward` waits.)
            log.error("reading the events of run %s failed", run_id, exc_info=exc)
            with suppress(*CLIENT_GONE):
                await follower.deliver(_read_failed(follower.last_id, exc))
        finally:
            state.runs.unsubscribed(local)
            follower.ended()
            log.debug("subscriber of run %s from event %d: events=%d bytes=%d duration=%.3fs", run_id, after,
                      follower.events_written, follower.bytes_written,
                      asyncio.get_running_loop().time() - started)
    return response


def _read_failed(last_id: int, exc: Exception) -> list[StoredEvent]:
    """The frames that end a stream whose reading failed, after the last event it got. (A function of
    its own: a deep expression in `follow` would grow its frame, which lives as long as the stream.)"""
    return as_logged(last_id, error_frames(RhetorError(
        f"reading the run's events failed: {type(exc).__name__} (see the server log)")))


def _last_event_id(request: web.Request, run_id: str) -> int:
    """The event number the client has seen (0: none), refused unless it is one of this run's ids."""
    raw = request.headers.get("Last-Event-ID") or request.query.get("last_event_id") or ""
    if not raw:
        return 0
    try:
        event_id = EventId.parse(raw)
    except InvalidEventId as exc:
        raise ApiError(400, "invalid_event_id", f"{exc}: not one this server sent", run_id=run_id) from None
    if event_id.prefix != id_prefix(run_id):
        raise ApiError(400, "foreign_event_id", f"event id {shown(raw)} does not belong to run {run_id}",
                       run_id=run_id)
    return event_id.number


def _run_id(request: web.Request) -> str:
    """The run id of the URL, refused as unknown unless it has the shape of one: it becomes part
    of store keys (`<id>:events` would name another run's key in Redis)."""
    run_id = request.match_info["run_id"]
    if not is_run_id(run_id):
        raise ApiError(404, "unknown_run", f"no run {shown(run_id)}: run ids are {RUN_ID_SHAPE}")
    return run_id
