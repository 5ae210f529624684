"""Server-Sent Events framing: bytes exactly as the WHATWG event-stream format wants them.

Deliberate choices:
- Field order is `id`, `event`, `retry`, `data`; a frame ends with one blank line.
- Every payload line becomes its own `data: ` line, always with the space, because the client strips
  exactly one space after the colon. CR, LF and CRLF all end a line in the format, so all three
  split a payload; the client joins data lines with LF, so CR and CRLF come back as LF.
- `id` and `event` with CR or LF would end the field early and inject fields, and a NUL in an `id`
  makes browsers ignore it: those are refused, not escaped.
- orjson never emits a raw CR or LF (they are escaped inside strings), so JSON payloads skip the
  line splitting, and the `event:` line of each name is built and checked once: this is the
  server's hot path.
"""
from __future__ import annotations

import re
from typing import Final

import orjson

_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_EVENT_LINES: dict[str, bytes] = {}
_EVENT_LINES_MAX = 1024  # names come from code, but a cache must never grow without bound


def encode_event(data: str | None = None, *, event: str | None = None, id: str | int | None = None,
                 retry: int | None = None) -> bytes:
    """One complete frame. `data=None` sends no data line (the event then only moves the id)."""
    body = b""
    if data is not None:
        body = "".join(f"data: {line}\n" for line in _LINE_BREAK.split(data)).encode("utf-8")
    return _id_line(id) + _event_line(event) + _retry_line(retry) + body + b"\n"


def encode_json_event(event: str, payload: object, *, id: str | int | None = None,
                      retry: int | None = None) -> bytes:
    """A frame whose data is `payload` as JSON on a single `data:` line.

    `bytes` are JSON already encoded (by orjson, or read back from a run's log), used as they are:
    orjson cannot encode bytes, so the two meanings never meet.
    """
    if type(id) is int:
        return encode_numbered(b"id: ", id, event, payload, retry)
    data = payload if type(payload) is bytes else orjson.dumps(payload)
    return b"%b%b%bdata: %b\n\n" % (_id_line(id), _event_line(event), _retry_line(retry), data)


def encode_numbered(head: bytes, number: int, event: str, payload: object, retry: int | None = None) -> bytes:
    """`encode_json_event` for the events of a stream whose ids are `head` (see `sse.ids.id_head`) and
    a number: the per-event path of every stream, so the id line is one formatting step."""
    data = payload if type(payload) is bytes else orjson.dumps(payload)
    event_line = _EVENT_LINES.get(event) or _event_line(event)
    if retry is None:
        return b"%b%d\n%bdata: %b\n\n" % (head, number, event_line, data)
    return b"%b%d\n%b%bdata: %b\n\n" % (head, number, event_line, _retry_line(retry), data)


def encode_comment(text: str = "") -> bytes:
    """A comment frame (`: text`), ignored by clients; keeps idle connections alive through proxies."""
    return ("".join(f": {line}\n" for line in _LINE_BREAK.split(text)) + "\n").encode("utf-8")


def _id_line(id: str | int | None) -> bytes:
    if id is None:
        return b""
    if type(id) is int:
        return b"id: %d\n" % id
    text = str(id)
    _refuse_line_breaks("id", text)
    if "\0" in text:
        raise ValueError("SSE field 'id' must not contain NUL (browsers ignore such ids)")
    return f"id: {text}\n".encode()


def _event_line(event: str | None) -> bytes:
    if not event:
        return b""
    line = _EVENT_LINES.get(event)
    if line is None:
        _refuse_line_breaks("event", event)
        line = f"event: {event}\n".encode()
        if len(_EVENT_LINES) < _EVENT_LINES_MAX:
            _EVENT_LINES[event] = line
    return line


def _retry_line(retry: int | None) -> bytes:
    if retry is None:
        return b""
    if isinstance(retry, bool) or not isinstance(retry, int):
        raise TypeError(f"SSE field 'retry' must be an int of milliseconds, got {type(retry).__name__}")
    if retry < 0:
        raise ValueError(f"SSE field 'retry' must not be negative, got {retry}")
    return b"retry: %d\n" % retry


def _refuse_line_breaks(field: str, value: str) -> None:
    if "\n" in value or "\r" in value:
        raise ValueError(f"SSE field {field!r} must not contain CR or LF: {value!r}")


HEARTBEAT: Final[bytes] = encode_comment("ping")
