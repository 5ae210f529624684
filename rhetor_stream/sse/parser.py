"""An incremental event-stream parser following the WHATWG rules to the letter.

It is fed raw network chunks, so it copes with what networks do: a multi-byte UTF-8 character cut
in two, a CR at the end of one chunk whose LF arrives in the next (one line end, not two), and a
frame spread over many reads. Only CR, LF and CRLF end lines: `str.splitlines` would also split on
U+2028, VT, FS and friends, which are ordinary characters in an event stream. An event that is not
terminated by a blank line when the stream ends is discarded, as browsers do.
"""
from __future__ import annotations

import codecs
import re
from collections.abc import AsyncIterable, AsyncIterator, Callable
from typing import Any

import attrs
import orjson

_LINE_END = re.compile(r"\r\n|\r|\n")


@attrs.frozen
class ServerSentEvent:
    """A dispatched event; `id` is the stream's last event id at dispatch time (it persists)."""

    event: str = "message"
    data: str = ""
    id: str = ""
    retry: int | None = None

    def json(self) -> Any:
        return orjson.loads(self.data)


class SSEParser:
    """Feed bytes in, get complete events out."""

    def __init__(self, *, on_comment: Callable[[str], None] | None = None) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._on_comment = on_comment
        self._partial: list[str] = []
        self._started = False
        self._skip_lf = False
        self._data: list[str] = []
        self._event = ""
        self._retry: int | None = None
        self.last_event_id = ""
        self.retry: int | None = None

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        return self._feed_text(self._decoder.decode(chunk))

    def close(self) -> list[ServerSentEvent]:
        """End of stream: whatever is not terminated by a blank line is thrown away."""
        self._feed_text(self._decoder.decode(b"", final=True))
        self._partial.clear()
        self._data.clear()
        self._event = ""
        self._retry = None
        return []

    def _feed_text(self, text: str) -> list[ServerSentEvent]:
        if not text:
            return []
        if not self._started:
            self._started = True
            if text.startswith("\ufeff"):
                text = text[1:]
        if self._skip_lf:
            self._skip_lf = False
            if text.startswith("\n"):
                text = text[1:]
        if "\n" not in text and "\r" not in text:
            self._partial.append(text)
            return []
        if self._partial:
            self._partial.append(text)
            text = "".join(self._partial)
            self._partial.clear()
        events: list[ServerSentEvent] = []
        start = 0
        for match in _LINE_END.finditer(text):
            event = self._line(text[start:match.start()])
            if event is not None:
                events.append(event)
            start = match.end()
        if text.endswith("\r"):
            self._skip_lf = True  # the LF of a CRLF may arrive in the next chunk
        if start < len(text):
            self._partial.append(text[start:])
        return events

    def _line(self, line: str) -> ServerSentEvent | None:
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            if self._on_comment is not None:
                self._on_comment(line[2:] if line.startswith(": ") else line[1:])
            return None
        field, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if field == "data":
            self._data.append(value)
        elif field == "event":
            self._event = value
        elif field == "id":
            if "\0" not in value:
                self.last_event_id = value
        elif field == "retry":
            if value.isascii() and value.isdigit():
                self.retry = self._retry = int(value)
        return None

    def _dispatch(self) -> ServerSentEvent | None:
        data, event, retry = self._data, self._event, self._retry
        self._data, self._event, self._retry = [], "", None
        if not data:
            return None
        return ServerSentEvent(event=event or "message", data="\n".join(data), id=self.last_event_id,
                               retry=retry)


async def aiter_events(chunks: AsyncIterable[bytes], *,
                       on_comment: Callable[[str], None] | None = None) -> AsyncIterator[ServerSentEvent]:
    """Events from an async byte stream, e.g. `response.content.iter_any()` of aiohttp."""
    parser = SSEParser(on_comment=on_comment)
    async for chunk in chunks:
        for event in parser.feed(chunk):
            yield event
    parser.close()
