"""Words for people: messages in events and errors are read, so they say "1 round", not "1 rounds"."""
from __future__ import annotations


def plural(count: int, noun: str) -> str:
    """`count` and `noun`, with an s unless there is exactly one."""
    return f"{count} {noun}{'' if count == 1 else 's'}"
