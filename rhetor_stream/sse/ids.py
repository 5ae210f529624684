"""Event ids as this server writes them (`N`, or `<prefix>-N` on a run's stream), and read back.

One type owns the format both ways: `EventId` writes the text of an id and parses an id a client
sends back, and `id_head` gives the bytes every frame of a stream starts with, so the hot path only
appends the number.

An id comes back from the client (`Last-Event-ID`), so it is untrusted text: `str.isdigit()` also
accepts digits such as '²' that `int()` refuses, and `int()` refuses more than 4,300 digits. Only
ASCII digits, and no more than an event number can have, count as a number here.
"""
from __future__ import annotations

from typing import NamedTuple

# 2**64 has 20 digits: no event number of ours is longer, yet any id up to it is well formed.
MAX_DIGITS = 20


class InvalidEventId(ValueError):
    """The id is not one this server could have sent; the message says what is wrong with it."""


class EventId(NamedTuple):
    """An event's number in its stream (for a run: its place in the run's log) and the prefix that ties
    it to its run ('' on a stream of its own)."""

    prefix: str
    number: int

    def __str__(self) -> str:
        return f"{self.prefix}-{self.number}" if self.prefix else str(self.number)

    @classmethod
    def parse(cls, text: str) -> EventId:
        """`<prefix>-N` or a plain `N` (prefix ''), as this server writes them."""
        prefix, _, number = text.rpartition("-")
        if not number or not number.isascii() or not number.isdigit():
            raise InvalidEventId(f"event id {shown(text)} does not end in a number")
        if len(number) > MAX_DIGITS:
            raise InvalidEventId(f"event id {shown(text)} ends in a {len(number)}-digit number "
                                 f"(event numbers have at most {MAX_DIGITS} digits)")
        return cls(prefix, int(number))


def id_head(prefix: str | None) -> bytes:
    """`id: ` and, with a prefix, `<prefix>-`: what every id line of a stream starts with, checked once.

    A line break would end the field early and inject others, and browsers ignore an id with a NUL.
    """
    if not prefix:
        return b"id: "
    if "\n" in prefix or "\r" in prefix or "\0" in prefix:
        raise ValueError(f"an event id prefix must not contain CR, LF or NUL: {prefix!r}")
    return f"id: {prefix}-".encode()


def sequence_number(event_id: str) -> int | None:
    """The N of an event id, or None when the id has none."""
    try:
        return EventId.parse(event_id).number
    except InvalidEventId:
        return None


def shown(event_id: str, limit: int = 60) -> str:
    """The id quoted for a message, shortened: an id can be as long as a header line."""
    text = repr(event_id)
    return text if len(text) <= limit else f"{text[:limit]}...' ({len(event_id)} characters)"
