"""Growing pauses between tries of something that failed: the one backoff of the project.

Every retry loop (a subscriber waiting for the event store, the Redis store writing held events or
listening again, a provider connecting, the client resuming a stream) pauses `first`, then `factor`
times longer each time, never longer than `cap`, and starts over with `reset()` once a try succeeds.
Each pause is stretched by a random share of up to `jitter`: many waiters that failed together (all
the subscribers of one Redis outage) then do not all try again at the same instant.

No imports from the project: the client and every layer of the server use it.
"""
from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable


class Backoff:
    """Pauses `first`, `first * factor`, ... up to `cap`, each times 1 to 1 + `jitter`.

    `rand` (a number in [0, 1)) and `sleep` are there for tests, which want neither chance nor time.
    """

    __slots__ = ("_first", "_cap", "_factor", "_jitter", "_rand", "_sleep", "_pause")

    def __init__(self, first: float, cap: float, *, factor: float = 2.0, jitter: float = 0.25,
                 rand: Callable[[], float] = random.random,
                 sleep: Callable[[float], Awaitable[object]] = asyncio.sleep) -> None:
        self._first = first
        self._cap = max(cap, first)
        self._factor = factor
        self._jitter = jitter
        self._rand = rand
        self._sleep = sleep
        self._pause = first

    def next(self) -> float:
        """The pause to make now (seconds); the one after it is longer, up to the cap."""
        pause = self._pause * (1.0 + self._jitter * self._rand())
        self._pause = min(self._pause * self._factor, self._cap)
        return pause

    async def wait(self) -> float:
        """Make the next pause; returns how long it was."""
        pause = self.next()
        await self._sleep(pause)
        return pause

    def reset(self) -> None:
        """A try succeeded: the next failure pauses `first` again."""
        self._pause = self._first
