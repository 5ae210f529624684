"""A small async Python client for a rhetor_stream server.

    async with StreamClient("http://127.0.0.1:8003") as client:
        async for event in client.stream("SendMessageToSpecialistStream",
                                         {"specialist_id": "planner", "message": "Plan a launch"}):
            print(event.type, event.data)

Events are read with the project's own SSE parser; HTTP errors raise `StreamClientError` carrying the
server's status, message and code.
"""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from types import TracebackType
from typing import Any

import aiohttp
import attrs

from rhetor_stream.api import API
from rhetor_stream.backoff import Backoff
from rhetor_stream.sse.parser import aiter_events
from rhetor_stream.wording import plural


@attrs.frozen
class StreamEvent:
    type: str
    id: str
    data: Any


class StreamClientError(Exception):
    """The server answered with an error status (or a tool failed in `process`); status 0 with code
    `stream_cut` or `stream_lost` means the connection broke off mid-stream."""

    def __init__(self, status: int, message: str, code: str = "") -> None:
        super().__init__(f"HTTP {status} {code}: {message}" if code else f"HTTP {status}: {message}")
        self.status = status
        self.message = message
        self.code = code


class StreamClient:
    def __init__(self, base_url: str, *, session: aiohttp.ClientSession | None = None,
                 timeout: float | None = None, api_key: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        # Sent on every request, resumes included (a server with keys needs it everywhere).
        self._auth = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._own_session = session is None
        # No total timeout by default: a stream may rightly last long; `timeout` bounds silence.
        self._timeout = aiohttp.ClientTimeout(total=None, sock_read=timeout)
        self._session = session

    async def __aenter__(self) -> StreamClient:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        traceback: TracebackType | None) -> None:
        await self.close()

    async def close(self) -> None:
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("use `async with StreamClient(...) as client`")
        return self._session

    async def stream(self, tool_name: str, arguments: Mapping[str, Any] | None = None, *,
                     chunk_size: str = "sentence", include_progress: bool = True,
                     resume_grace_s: float | None = None, reconnects: int = 5) -> AsyncIterator[StreamEvent]:
        """Run a tool and yield its events as they arrive, until `disconnect`.

        With `resume_grace_s` the run outlives a dropped connection for that long, and the stream
        resumes by itself through the run's events (Last-Event-ID), up to `reconnects` failed
        attempts in a row: the caller sees every event exactly once, as if nothing had happened.
        """
        options: dict[str, Any] = {"chunk_size": chunk_size, "include_progress": include_progress}
        if resume_grace_s is not None:
            options["resume_grace_s"] = resume_grace_s
        body = {"tool_name": tool_name, "arguments": dict(arguments or {}), "stream_options": options}
        position = _Position()
        cut: BaseException | None = None
        try:
            async with self.session.post(self.base_url + API + "/stream", json=body,
                                         headers={"Accept": "text/event-stream", **self._auth}) as response:
                await _raise_for_status(response)
                async for event in _read(response, position):
                    yield event
        except _BROKEN as exc:
            cut = exc
        if position.ended:
            return
        if resume_grace_s is None or position.run_id is None:
            raise _stream_cut(cut)
        async for event in self._resume(position, reconnects):
            yield event

    async def events(self, run_id: str, *, last_event_id: str | None = None) -> AsyncIterator[StreamEvent]:
        """Replay and follow a run's events (after `last_event_id` when resuming)."""
        position = _Position(run_id)
        try:
            async for event in self._events(run_id, last_event_id, position):
                yield event
        except _BROKEN as exc:
            raise _stream_cut(exc) from exc
        if not position.ended:
            raise _stream_cut(None)

    async def _events(self, run_id: str, last_event_id: str | None,
                      position: _Position) -> AsyncIterator[StreamEvent]:
        headers = {"Accept": "text/event-stream", **self._auth}
        if last_event_id:
            headers["Last-Event-ID"] = last_event_id
        async with self.session.get(f"{self.base_url}{API}/runs/{run_id}/events", headers=headers) as response:
            await _raise_for_status(response)
            if response.status == 204:
                raise StreamClientError(204, f"run {run_id} is unknown or expired", "unknown_run")
            async for event in _read(response, position):
                yield event

    async def _resume(self, position: _Position, reconnects: int) -> AsyncIterator[StreamEvent]:
        assert position.run_id is not None
        failures = 0
        backoff = Backoff(_RESUME_FIRST, _RESUME_LAST)
        while not position.ended:
            if failures > reconnects:
                raise StreamClientError(0, f"the stream of run {position.run_id} broke off and could not "
                                           f"be resumed after {plural(reconnects, 'attempt')}", "stream_lost")
            if failures:  # the first try after a cut is at once: the run is most likely still there
                await backoff.wait()
            seen = position.count
            try:
                async for event in self._events(position.run_id, position.last_id, position):
                    yield event
            except _BROKEN:
                pass
            except StreamClientError as exc:
                if exc.status != 503:  # 503: the server or its event store is coming back
                    raise
            if position.count > seen:
                failures = 0
                backoff.reset()
            else:
                failures += 1

    async def process(self, tool_name: str, arguments: Mapping[str, Any] | None = None) -> Any:
        """Run a tool and return its result; a tool failure raises StreamClientError."""
        body = await self._json("POST", "/process", {"tool_name": tool_name, "arguments": dict(arguments or {})})
        if not body["success"]:
            raise StreamClientError(200, body["error"], body.get("code", "tool_error"))
        return body["result"]

    async def start_run(self, tool_name: str, arguments: Mapping[str, Any] | None = None) -> str:
        body = await self._json("POST", "/runs", {"tool_name": tool_name, "arguments": dict(arguments or {})})
        return str(body["run_id"])

    async def tools(self) -> list[dict[str, Any]]:
        tools: list[dict[str, Any]] = await self._json("GET", "/tools")
        return tools

    async def health(self) -> dict[str, Any]:
        async with self.session.get(self.base_url + "/health", headers=self._auth) as response:
            await _raise_for_status(response)
            health: dict[str, Any] = await response.json()
            return health

    async def _json(self, method: str, path: str, body: Any = None) -> Any:
        async with self.session.request(method, self.base_url + API + path, json=body,
                                        headers=self._auth) as response:
            await _raise_for_status(response)
            return await response.json()


# A connection that broke: the run may still be going, so a resumable stream reconnects.
_BROKEN = (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError, asyncio.TimeoutError)
_RESUME_FIRST, _RESUME_LAST = 0.4, 3.0  # pauses between failed tries to resume a stream


def _stream_cut(cause: BaseException | None) -> StreamClientError:
    how = f": {type(cause).__name__}" if cause is not None else ""
    return StreamClientError(0, f"the stream broke off before its disconnect event{how}", "stream_cut")


@attrs.define
class _Position:
    """How far a stream has got: which run, the last event id, and whether it ended."""

    run_id: str | None = None
    last_id: str | None = None
    count: int = 0
    ended: bool = False


async def _read(response: aiohttp.ClientResponse, position: _Position) -> AsyncIterator[StreamEvent]:
    async for event in aiter_events(response.content.iter_any()):
        data = event.json()
        if event.event == "connected" and position.run_id is None:
            position.run_id = data.get("run_id")
        position.last_id = event.id or position.last_id
        position.count += 1
        position.ended = event.event == "disconnect"
        yield StreamEvent(event.event, event.id, data)
        if position.ended:
            return


async def _raise_for_status(response: aiohttp.ClientResponse) -> None:
    if response.status < 400:
        return
    try:
        payload = await response.json(content_type=None)
        message, code = str(payload.get("error", response.reason)), str(payload.get("code", ""))
    except (ValueError, aiohttp.ContentTypeError, AttributeError):
        message, code = (await response.text())[:200] or str(response.reason), ""
    raise StreamClientError(response.status, message, code)
