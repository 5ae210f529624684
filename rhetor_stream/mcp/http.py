"""`/mcp`: the Model Context Protocol's Streamable HTTP transport over our app, framing and runs.

- `POST` takes one JSON-RPC message (a batch too, where the session's version allows it). A request is
  answered with `application/json`, or with `text/event-stream` when the client accepts it and the
  call streams (tools/call); notifications and responses get 202.
- `GET` with `Last-Event-ID` resumes a tools/call stream from the run's log; without it, 405: the server
  sends nothing unprompted, so it has no stream of its own to offer.
- `DELETE` ends the session and cancels its calls running in this process.

Every tools/call is a run of the RunManager, like `POST /api/mcp/v2/stream`: its events are logged
(in Redis, for all processes), the SSE ids are their numbers in that log, and a client that loses the
connection has `--mcp-resume-grace` seconds to come back before the run is cancelled. The front door
(`web.front_door`) checks `Host`, `Origin` and the API key of every request here before this code runs.

Transport problems (unreadable JSON, a missing or unknown session, a version or Accept the server
cannot serve) are HTTP errors whose body is a JSON-RPC error; problems of a method call are JSON-RPC
errors in a normal answer; a tool that fails, or gets bad arguments, answers a result with `isError`.
"""
from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import orjson
from aiohttp import hdrs, web

from rhetor_stream.mcp import protocol
from rhetor_stream.mcp.protocol import Message, RequestId, RpcError
from rhetor_stream.mcp.sessions import Session, Sessions
from rhetor_stream.mcp.stream import CallStream, McpFrames, McpRelay, parse_event_id
from rhetor_stream.runs.manager import LocalRun, Resume
from rhetor_stream.runs.store import RUNNING, StoreUnavailable
from rhetor_stream.security.capability import Capabilities
from rhetor_stream.sse.encoding import encode_json_event
from rhetor_stream.stream.options import StreamOptions
from rhetor_stream.web import guard
from rhetor_stream.web.errors import ApiError
from rhetor_stream.web.front_door import FrontDoor
from rhetor_stream.web.runs import follow
from rhetor_stream.web.state import STATE
from rhetor_stream.web.streams import SSE_HEADERS, RunCall

PATH = "/mcp"
SESSION_HEADER = "Mcp-Session-Id"
VERSION_HEADER = "MCP-Protocol-Version"
JSON = "application/json"
EVENT_STREAM = "text/event-stream"

log = logging.getLogger("rhetor_stream.mcp")


@attrs.define(eq=False)
class McpState:
    sessions: Sessions
    # (session nonce, request id) -> the run of a tools/call starting or running in this process, for
    # DELETE and to refuse a request id used twice at once.
    calls: dict[tuple[str, RequestId], str] = attrs.Factory(dict)
    watchers: set[asyncio.Future[None]] = attrs.Factory(set)

    def reserve(self, session: Session, request_id: RequestId) -> str | None:
        """The run id of this call, or None when the session's request id is in use here."""
        key = (session.nonce, request_id)
        if key in self.calls:
            return None
        run_id = self.calls[key] = call_run_id(session, request_id)
        return run_id

    def release(self, session: Session, request_id: RequestId) -> None:
        self.calls.pop((session.nonce, request_id), None)

    def track(self, session: Session, request_id: RequestId, run: LocalRun) -> None:
        """Forget the call once its run ends."""
        def ended(waiter: asyncio.Future[None]) -> None:
            self.watchers.discard(waiter)
            self.release(session, request_id)

        waiter = asyncio.ensure_future(run.tool_run.wait_closed())
        self.watchers.add(waiter)
        waiter.add_done_callback(ended)

    def runs_of(self, session: Session) -> list[str]:
        return [run_id for (nonce, _), run_id in self.calls.items() if nonce == session.nonce]


def call_run_id(session: Session, request_id: RequestId) -> str:
    """A tools/call's run is named by its session and request id (which the spec makes unique within
    a session), so whichever process a `notifications/cancelled` reaches can cancel it. The session's
    nonce is a secret, so the run id stays as unguessable as a random one."""
    return hashlib.sha256(f"{session.nonce}\n".encode() + orjson.dumps(request_id)).hexdigest()[:32]


MCP = web.AppKey("rhetor_stream_mcp", McpState)


def setup(app: web.Application, door: FrontDoor) -> list[web.AbstractRoute]:
    """Serve `/mcp` on `app`, through its front `door`; returns its routes (CORS applies to them
    like to the API's)."""
    settings = app[STATE].settings

    def signer() -> Capabilities:
        capabilities = app[guard.GUARD].capabilities
        assert capabilities is not None, "the app has not started"
        return capabilities

    app[MCP] = McpState(Sessions(signer, settings.capability_ttl))
    return [door.post(PATH, post), door.get(PATH, get, head=False), door.delete(PATH, delete)]


class TransportError(Exception):
    """Answered as an HTTP error whose body is a JSON-RPC error (id null)."""

    def __init__(self, status: int, code: int, message: str, *, headers: dict[str, str] | None = None,
                 data: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}
        self.data = data

    def response(self) -> web.Response:
        return _json(protocol.error(None, self.code, self.message, self.data), status=self.status,
                     headers=self.headers)


def _transport_errors(handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                      ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handle(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except TransportError as exc:
            return exc.response()
        except StoreUnavailable as exc:
            log.warning("%s %s: %s", request.method, request.path, exc)
            return _json(protocol.server_error(None, exc), status=exc.status)
    handle.__doc__ = handler.__doc__
    return handle


@attrs.frozen
class Accepts:
    json: bool
    sse: bool

    @classmethod
    def of(cls, request: web.Request) -> Accepts:
        """What the `Accept` header allows (no header: anything)."""
        header = request.headers.get(hdrs.ACCEPT)
        if not header:
            return cls(True, True)
        types = set()
        for part in header.split(","):
            media, *parameters = (piece.strip().lower() for piece in part.split(";"))
            if all(_quality(parameter) != 0 for parameter in parameters):  # q=0 means "not this one"
                types.add(media)
        return cls(bool(types & {JSON, "application/*", "*/*"}), bool(types & {EVENT_STREAM, "text/*", "*/*"}))


def _quality(parameter: str) -> float | None:
    name, _, value = parameter.partition("=")
    if name.strip() != "q":
        return None
    try:
        return float(value)
    except ValueError:
        return None


# --- POST ---------------------------------------------------------------------------------------------

@_transport_errors
async def post(request: web.Request) -> web.StreamResponse:
    """POST /mcp: one JSON-RPC message (or a batch) from the client."""
    accepts = Accepts.of(request)
    if not (accepts.json or accepts.sse):
        raise TransportError(406, protocol.INVALID_REQUEST, f"Accept must allow {JSON} or {EVENT_STREAM} "
                             f"(got {request.headers.get(hdrs.ACCEPT)!r})")
    if request.content_type != JSON:
        raise TransportError(415, protocol.INVALID_REQUEST, f"send JSON-RPC with 'Content-Type: {JSON}' "
                             f"(got {request.content_type!r})")
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise TransportError(413, protocol.INVALID_REQUEST, "request body is larger than the limit of "
                             f"{request.app[STATE].settings.max_body_bytes} bytes") from None
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise TransportError(400, protocol.PARSE_ERROR, f"the body is not valid JSON: {exc}") from None
    _check_version_header(request)
    if isinstance(body, list):
        return await _batch(request, body)
    try:
        message = protocol.parse(body)
    except RpcError as exc:
        return _json(exc.response(), status=400)
    if message.method == "initialize":
        return _initialize(request, message, accepts)
    session = _session(request)
    if not message.is_request:
        await _notified(request, session, message)
        return web.Response(status=202)
    if message.method == "tools/call":
        return await _call_tool(request, session, message, accepts)
    return _reply(protocol.answer(message, request.app[STATE].tools), accepts)


def _initialize(request: web.Request, message: Message, accepts: Accepts) -> web.Response:
    if message.id is None:
        raise TransportError(400, protocol.INVALID_REQUEST, "initialize must be a request (with an id)")
    try:
        result, version = protocol.initialize(message)
    except RpcError as exc:
        return _reply(exc.response(), accepts)
    session_id, _ = _app_state(request).sessions.issue(version)
    return _reply(protocol.result(message.id, result), accepts, headers={SESSION_HEADER: session_id})


async def _batch(request: web.Request, body: list[Any]) -> web.Response:
    """A JSON-RPC batch: only for sessions of a version that has them; answered as one JSON array."""
    session = _session(request)
    if session.version not in protocol.BATCH_VERSIONS:
        raise TransportError(400, protocol.INVALID_REQUEST, f"protocol version {session.version} has no "
                             "JSON-RPC batches; send one message per POST")
    if not body:
        raise TransportError(400, protocol.INVALID_REQUEST, "an empty batch")
    answers = []
    for raw in body:
        try:
            message = protocol.parse(raw)
            if message.method == "initialize":
                raise RpcError(protocol.INVALID_REQUEST, "initialize cannot be part of a batch", message.id)
        except RpcError as exc:
            answers.append(exc.response())
            continue
        if not message.is_request:
            await _notified(request, session, message)
        elif message.method == "tools/call":
            answers.append(await _call_tool_for_json(request, session, message))
        else:
            answers.append(protocol.answer(message, request.app[STATE].tools))
    return _json(answers) if answers else web.Response(status=202)


async def _notified(request: web.Request, session: Session, message: Message) -> None:
    """A notification (or a response, which we never asked for): only a cancellation does something,
    and it reaches the call in whichever process runs it."""
    request_id = message.params.get("requestId")
    if message.method != "notifications/cancelled" or not protocol.valid_id(request_id):
        return
    runs = request.app[STATE].runs
    run_id = call_run_id(session, request_id)
    log.debug("MCP session %s cancels request %r (run %s)", session.nonce[:8], request_id, run_id)
    if not runs.cancel_local(run_id, "cancelled"):
        record = await runs.record_ending_lost(run_id)
        if record is not None and record.status == RUNNING:
            await runs.cancel(run_id)


# --- tools/call ---------------------------------------------------------------------------------------

@attrs.frozen
class _Call:
    run: LocalRun
    stream: CallStream


async def _start_call(request: web.Request, session: Session, message: Message,
                      grace: float) -> _Call | dict[str, Any]:
    """Check the call and start its run; or the response that refuses it."""
    assert message.id is not None
    state = request.app[STATE]
    checked = protocol.check_call(message, state.tools, request.app)
    if not isinstance(checked, protocol.ToolCall):
        return checked
    try:
        guard.check_token_budget(request, checked.tool, checked.arguments)
    except ApiError as exc:
        return protocol.refused(message.id, exc)
    refusal = guard.admit_run(request)
    if refusal is not None:
        return protocol.result(message.id, protocol.tool_error(refusal.message, "rate_limited", limit=refusal.limit))
    mcp = _app_state(request)
    reused = protocol.error(message.id, protocol.INVALID_REQUEST, f"request id {message.id!r} was already "
                            "used in this session; a request id must be new")
    run_id = mcp.reserve(session, message.id)
    if run_id is None:
        return reused
    try:
        if await state.runs.record_ending_lost(run_id) is not None:
            mcp.release(session, message.id)
            return reused
        run = await state.runs.create(checked.tool, checked.arguments, StreamOptions(), grace=grace, run_id=run_id)
    except BaseException:  # the store failed, or the client left: the id was not used after all
        mcp.release(session, message.id)
        raise
    guard.hold_slot(request, run)
    mcp.track(session, message.id, run)
    return _Call(run, CallStream(session.nonce, message.id, checked.progress_token))


async def _call_tool(request: web.Request, session: Session, message: Message,
                     accepts: Accepts) -> web.StreamResponse:
    if not accepts.sse:
        return _reply(await _call_tool_for_json(request, session, message), accepts)
    state = request.app[STATE]
    settings = state.settings
    call = await _start_call(request, session, message, settings.mcp_resume_grace)
    if not isinstance(call, _Call):
        return _reply(call, accepts)
    run_id = call.run.run_id

    return await follow(request, run_id, 0, local=call.run, backpressure=True,
                        frames=lambda retry_ms: McpFrames(call.stream, run_id, retry_ms))


async def _call_tool_for_json(request: web.Request, session: Session, message: Message) -> dict[str, Any]:
    """A tools/call answered as one JSON document: a run too, cancelled at once if the client leaves
    (without an event stream there is nothing to resume)."""
    state = request.app[STATE]
    call = await _start_call(request, session, message, 0)
    if not isinstance(call, _Call):
        return call
    relay = McpRelay(call.stream)
    watched = RunCall(request, call.run.tool_run)
    state.supervisor.watch(watched)
    state.runs.subscribed(call.run)
    try:
        await state.runs.forward(call.run.run_id, 0, relay)
    finally:  # also when aiohttp cancels the handler: the run is cancelled with its last subscriber
        state.supervisor.forget(watched)
        state.runs.unsubscribed(call.run)
    if relay.response is None:
        return protocol.error(message.id, protocol.INTERNAL_ERROR, "the call's events stopped before its result")
    answer: dict[str, Any] = orjson.loads(relay.response)
    return answer


# --- GET and DELETE -----------------------------------------------------------------------------------

@_transport_errors
async def get(request: web.Request) -> web.StreamResponse:
    """GET /mcp: resume a tools/call stream after `Last-Event-ID`."""
    if not Accepts.of(request).sse:
        raise TransportError(406, protocol.INVALID_REQUEST, f"GET /mcp answers {EVENT_STREAM}; Accept must allow it")
    session = _session(request)
    _check_version_header(request, session)
    raw = request.headers.get("Last-Event-ID")
    if not raw:
        raise TransportError(405, protocol.INVALID_REQUEST, "this server sends nothing unprompted: GET /mcp "
                             "only resumes a stream, with Last-Event-ID", headers={hdrs.ALLOW: "POST, DELETE"})
    parsed = parse_event_id(raw)
    if parsed is None:
        raise TransportError(400, protocol.INVALID_REQUEST, f"Last-Event-ID {raw[:80]!r} is not an event id "
                             "this server sent")
    run_id, stream, after = parsed
    if stream.session != session.nonce:
        raise TransportError(404, protocol.INVALID_REQUEST, "that stream belongs to another session")
    state = request.app[STATE]
    point = await state.runs.resume_point(run_id, after)
    if point is Resume.UNKNOWN:
        raise TransportError(404, protocol.INVALID_REQUEST, "that stream's call is no longer kept (finished "
                             f"calls are kept for {state.settings.run_retention:g} s)")
    if point is Resume.COMPLETE:
        return web.Response(status=204)  # the client has every message of that call
    if point is Resume.BEYOND:
        raise TransportError(400, protocol.INVALID_REQUEST, f"Last-Event-ID {raw[:80]!r} is past the end of "
                             "that stream")
    return await follow(request, run_id, after, local=state.runs.local(run_id), backpressure=False,
                        frames=lambda retry_ms: McpFrames(stream, run_id, retry_ms))


@_transport_errors
async def delete(request: web.Request) -> web.Response:
    """DELETE /mcp: end the session; its calls running in this process are cancelled."""
    session = _session(request)
    mcp = _app_state(request)
    mcp.sessions.end(session)
    for run_id in mcp.runs_of(session):
        request.app[STATE].runs.cancel_local(run_id, "cancelled")
    return web.Response(status=204)


# --- helpers ------------------------------------------------------------------------------------------

def _session(request: web.Request) -> Session:
    session_id = request.headers.get(SESSION_HEADER)
    if not session_id:
        raise TransportError(400, protocol.INVALID_REQUEST, f"missing {SESSION_HEADER} header: send initialize "
                             "first and then the id it answered with")
    session = _app_state(request).sessions.find(session_id)
    if session is None:
        raise TransportError(404, protocol.INVALID_REQUEST, "unknown, expired or ended MCP session; "
                             "initialize a new one")
    return session


def _check_version_header(request: web.Request, session: Session | None = None) -> None:
    version = request.headers.get(VERSION_HEADER)
    if version is None:
        return
    if version not in protocol.VERSIONS:
        raise TransportError(400, protocol.UNSUPPORTED_VERSION, f"unsupported {VERSION_HEADER} {version[:40]!r}; "
                             f"this server speaks {', '.join(protocol.VERSIONS)}",
                             data={"supported": list(protocol.VERSIONS), "requested": version[:40]})
    if session is None:
        session_id = request.headers.get(SESSION_HEADER)
        session = _app_state(request).sessions.find(session_id) if session_id else None
    if session is not None and version != session.version:
        raise TransportError(400, protocol.INVALID_REQUEST, f"{VERSION_HEADER} {version} differs from the "
                             f"version this session negotiated ({session.version})")


def _app_state(request: web.Request) -> McpState:
    return request.app[MCP]


def _reply(body: Any, accepts: Accepts, *, headers: dict[str, str] | None = None) -> web.Response:
    """One answer, as JSON, or as a one-event stream for a client that accepts only that."""
    if accepts.json:
        return _json(body, headers=headers)
    return web.Response(body=encode_json_event("message", body), headers={**SSE_HEADERS, **(headers or {})})


def _json(body: Any, *, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type=JSON, headers=headers)
