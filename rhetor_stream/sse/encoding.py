"""Server-Sent Events framing: bytes exactly as the WHATWG event-stream format wants them.

Deliberate choices:
- Field order is `id`, `event`, `retry`, `data`; a frame ends with one blank line.
- Every payload line becomes its own `data: ` line, always with the space, because the client strips
  exactly one space after the colon. CR, LF and CRLF all end a line in the format, so all three
  split a payload; the client joins data lines with LF, so CR and CRLF come back as LF.
- `id` and `event` with CR or LF would end the field early and inject fields, and a NUL in an `id`
  makes browsers ignore it: those are refused, not escaped.
- orjson never emits a raw CR or LF (they are escaped inside strings), so JSON payloads skip the
  line splitting: that is the server's hot path.
"""
from __future__ import annotations

import re
from typing import Final

import orjson

_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def encode_event(data: str | None = None, *, event: str | None = None, id: str | None = None,
                 retry: int | None = None) -> bytes:
    """One complete frame. `data=None` sends no data line (the event then only moves the id)."""
    head = _head(event, id, retry)
    if data is None:
        body = ""
    else:
        body = "".join(f"data: {line}\n" for line in _LINE_BREAK.split(data))
    return (head + body + "\n").encode("utf-8")


def encode_json_event(event: str, payload: object, *, id: str | None = None,
                      retry: int | None = None) -> bytes:
    """A frame whose data is `payload` as JSON on a single `data:` line."""
    if id is None and retry is None and event and "\n" not in event and "\r" not in event:
        return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"
    return (_head(event, id, retry) + "data: ").encode("utf-8") + orjson.dumps(payload) + b"\n\n"


def encode_comment(text: str = "") -> bytes:
    """A comment frame (`: text`), ignored by clients; keeps idle connections alive through proxies."""
    return ("".join(f": {line}\n" for line in _LINE_BREAK.split(text)) + "\n").encode("utf-8")


def _head(event: str | None, id: str | None, retry: int | None) -> str:
    head = ""
    if id is not None:
        _refuse_line_breaks("id", id)
        if "\0" in id:
            raise ValueError("SSE field 'id' must not contain NUL (browsers ignore such ids)")
        head += f"id: {id}\n"
    if event:
        _refuse_line_breaks("event", event)
        head += f"event: {event}\n"
    if retry is not None:
        if isinstance(retry, bool) or not isinstance(retry, int):
            raise TypeError(f"SSE field 'retry' must be an int of milliseconds, got {type(retry).__name__}")
        if retry < 0:
            raise ValueError(f"SSE field 'retry' must not be negative, got {retry}")
        head += f"retry: {retry}\n"
    return head


def _refuse_line_breaks(field: str, value: str) -> None:
    if "\n" in value or "\r" in value:
        raise ValueError(f"SSE field {field!r} must not contain CR or LF: {value!r}")


HEARTBEAT: Final[bytes] = encode_comment("ping")
