"""A tools/call's run, seen as MCP messages: every event of the run's log becomes one SSE frame.

Why one frame per log event, even for events MCP has no message for (`connected`, `disconnect`, progress
without a progressToken): the frame's id is then the event's number in the run's log, so a client that
resumes with `Last-Event-ID` is answered from the log, by any process that reads it, with neither a gap
nor a duplicate. Events without a message go out as id-only frames (empty data), which clients do not
dispatch but which still move their resume cursor; the first one is the "priming" event the transport
spec asks for.

Why the request id and progress token are written into every event id: resuming happens in whichever
process the client reaches, which may not be the one that took the call, and the log holds our events,
not the JSON-RPC envelope. The id `<run_id>.<call>-<n>` carries both (`call` is base64url JSON), so
the stream can be rebuilt anywhere from the log alone.
"""
from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs
import orjson

from rhetor_stream.mcp import protocol
from rhetor_stream.mcp.protocol import RequestId
from rhetor_stream.runs.store import StoredEvent
from rhetor_stream.sse.encoding import encode_numbered
from rhetor_stream.sse.ids import EventId, InvalidEventId, id_head
from rhetor_stream.stream.channel import Payload


@attrs.frozen
class CallStream:
    """What turns a run's events into the messages of one tools/call: who asked, and how to tag progress."""

    session: str  # the session's nonce: a resume through another session is refused
    request_id: RequestId
    progress_token: RequestId | None = None

    def id_prefix(self, run_id: str) -> str:
        call = orjson.dumps([self.session, self.request_id, self.progress_token])
        return f"{run_id}.{base64.urlsafe_b64encode(call).rstrip(b'=').decode()}"

    def message(self, seq: int, event: str, data: Payload) -> bytes:
        """The JSON-RPC message for the run's event number `seq`, or b"" when it has none."""
        if event in ("complete", "error"):
            fields = _fields(data)
            if event == "complete":
                body = protocol.tool_result(fields.get("result"))
            else:
                context = {key: value for key, value in fields.items() if key not in ("error", "code", "timestamp")}
                body = protocol.tool_error(str(fields.get("error", "")), str(fields.get("code", "error")), **context)
            return orjson.dumps(protocol.result(self.request_id, body))
        if self.progress_token is None or event not in ("progress", "chunk", "message"):
            return b""
        text = _progress_text(event, _fields(data))
        if text is None:
            return b""
        # The spec wants `progress` to grow with every notification, and chunks have no percentage:
        # the event's place in the log grows, and is the same on every replay.
        return orjson.dumps(protocol.notification("notifications/progress", {
            "progressToken": self.progress_token, "progress": seq, "message": text}))


def parse_event_id(raw: str) -> tuple[str, CallStream, int] | None:
    """`(run_id, call, n)` from an event id this transport sent, or None."""
    try:
        event_id = EventId.parse(raw)
    except InvalidEventId:
        return None
    run_id, _, encoded = event_id.prefix.partition(".")
    if not (run_id and encoded):
        return None
    try:
        session, request_id, token = orjson.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
    except (ValueError, TypeError, binascii.Error, orjson.JSONDecodeError):
        return None
    if not isinstance(session, str) or not _is_id(request_id) or not (token is None or _is_id(token)):
        return None
    return run_id, CallStream(session, request_id, token), event_id.number


def _is_id(value: Any) -> bool:
    return isinstance(value, (str, int)) and not isinstance(value, bool)


def _fields(data: Payload) -> dict[str, Any]:
    value = orjson.loads(data) if isinstance(data, bytes) else dict(data)
    return value if isinstance(value, dict) else {}


def _progress_text(event: str, fields: Mapping[str, Any]) -> str | None:
    if event == "chunk":
        content = fields.get("content")
        text = content.get("content") if isinstance(content, dict) else content
        return text if isinstance(text, str) else None
    if event == "message":
        speaker = fields.get("name") or fields.get("speaker") or "?"
        return f"{speaker}: {fields.get('content', '')}"
    percentage = fields.get("percentage")
    message = str(fields.get("message") or fields.get("stage") or "")
    return f"{percentage:g}% {message}".rstrip() if isinstance(percentage, (int, float)) else message


class McpFrames:
    """A run's events on their way to an MCP client: each becomes its message (or an id-only frame)."""

    __slots__ = ("call", "_head", "_retry_ms")

    def __init__(self, call: CallStream, run_id: str, retry_ms: int | None) -> None:
        self.call = call
        self._head = id_head(call.id_prefix(run_id))
        self._retry_ms = retry_ms

    def __call__(self, event: StoredEvent) -> bytes:
        retry, self._retry_ms = self._retry_ms, None
        return encode_numbered(self._head, event.seq, "message", self.call.message(event.seq, event.event, event.data),
                               retry)


class McpRelay:
    """The same translation without a stream: each message goes to `deliver` as it comes (a stdio
    client), and the response is kept (a client that takes one JSON answer). Nothing is queued."""

    __slots__ = ("call", "response", "_deliver")

    def __init__(self, call: CallStream, deliver: Callable[[bytes], None] | None = None) -> None:
        self.call = call
        self.response: bytes | None = None
        self._deliver = deliver

    async def deliver(self, events: Sequence[StoredEvent]) -> None:
        for event in events:
            if self.response is not None:
                return  # nothing follows a response
            message = self.call.message(event.seq, event.event, event.data)
            if event.event in ("complete", "error"):
                self.response = message
            if message and self._deliver is not None:
                self._deliver(message)

    async def idle(self) -> None:
        """Nothing to keep alive: a JSON answer or a pipe."""
