"""Event ids as this server writes them (`N`, or `<prefix>-N` on a run's stream), read back.

An id comes back from the client (`Last-Event-ID`), so it is untrusted text: `str.isdigit()` also
accepts digits such as '²' that `int()` refuses, and `int()` refuses more than 4,300 digits. Only
ASCII digits, and no more than an event number can have, count as a number here.
"""
from __future__ import annotations

# 2**64 has 20 digits: no event number of ours is longer, yet any id up to it is well formed.
MAX_DIGITS = 20


class InvalidEventId(ValueError):
    """The id is not one this server could have sent; the message says what is wrong with it."""


def split_event_id(event_id: str) -> tuple[str, int]:
    """`<prefix>-N` as (prefix, N); a plain `N` has the prefix ''."""
    prefix, _, number = event_id.rpartition("-")
    if not number or not number.isascii() or not number.isdigit():
        raise InvalidEventId(f"event id {shown(event_id)} does not end in a number")
    if len(number) > MAX_DIGITS:
        raise InvalidEventId(f"event id {shown(event_id)} ends in a {len(number)}-digit number "
                             f"(event numbers have at most {MAX_DIGITS} digits)")
    return prefix, int(number)


def sequence_number(event_id: str) -> int | None:
    """The N of an event id, or None when the id has none."""
    try:
        return split_event_id(event_id)[1]
    except InvalidEventId:
        return None


def shown(event_id: str, limit: int = 60) -> str:
    """The id quoted for a message, shortened: an id can be as long as a header line."""
    text = repr(event_id)
    return text if len(text) <= limit else f"{text[:limit]}...' ({len(event_id)} characters)"
