"""Cost controls per API key: runs at once, runs per minute, and the LLM tokens one request may ask for.

Counted in each process (with `--workers N` a key may get up to N times a limit): the point is to
stop one client, by mistake or on purpose, from spending the operator's whole budget, not to bill.
Without keys, every client counts as the one key "anonymous".
"""
from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable

import attrs

ANONYMOUS = "anonymous"
WINDOW = 60.0


@attrs.frozen
class Refusal:
    """A request past a limit: which one, what to tell the client, and when trying again may work."""

    limit: str
    message: str
    retry_after: int | None


class Slot:
    """One admitted run; `release()` when it ends (more than once is harmless)."""

    def __init__(self, limiter: KeyLimiter, key: str) -> None:
        self._limiter = limiter
        self._key = key
        self._held = True

    def release(self) -> None:
        if self._held:
            self._held = False
            self._limiter._release(self._key)


class KeyLimiter:
    def __init__(self, *, concurrent: int, per_minute: int, max_tokens: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.concurrent = concurrent
        self.per_minute = per_minute
        self.max_tokens = max_tokens
        self._clock = clock
        self._running: dict[str, int] = {}
        self._started: dict[str, deque[float]] = {}

    @property
    def counts_runs(self) -> bool:
        return bool(self.concurrent or self.per_minute)

    def admit(self, key: str) -> Slot | Refusal:
        """Admit one more run of `key`, or say which limit it is past."""
        if self.concurrent and self._running.get(key, 0) >= self.concurrent:
            return Refusal("key_max_concurrent_runs", f"this key already has {self.concurrent} runs going "
                           f"(the limit); wait for one to end", 1)
        now = self._clock()
        if self.per_minute:
            started = self._started.setdefault(key, deque())
            while started and started[0] <= now - WINDOW:
                started.popleft()
            if len(started) >= self.per_minute:
                wait = math.ceil(started[0] + WINDOW - now)
                return Refusal("key_max_runs_per_minute", f"this key started {self.per_minute} runs in the "
                               f"last minute (the limit)", max(1, wait))
            started.append(now)
        self._running[key] = self._running.get(key, 0) + 1
        return Slot(self, key)

    def token_refusal(self, tokens: int) -> Refusal | None:
        """A refusal when one request asks for more LLM tokens than `--key-max-tokens` allows."""
        if not self.max_tokens or tokens <= self.max_tokens:
            return None
        return Refusal("key_max_tokens", f"this request may use up to {tokens} LLM tokens, more than the "
                       f"limit of {self.max_tokens} per request (fewer rounds or specialists, or ones with "
                       "a smaller max_tokens, fit)", None)

    def _release(self, key: str) -> None:
        left = self._running[key] - 1
        if left:
            self._running[key] = left
        else:
            del self._running[key]
            if not self._started.get(key):
                self._started.pop(key, None)
