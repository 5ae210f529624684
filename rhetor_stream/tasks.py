"""Tasks and timers of the event loop: ending a background task, and the context of timers.

Ending a task: cancelled until it has ended, however often it takes. Why not one `cancel()` and a
wait: on Python 3.11 `asyncio.wait_for`, which redis-py 8 puts around every command it sends, loses
a cancellation that arrives just as the awaited command completes; the task goes on as if nothing
happened (a lease renewed for ever), and a shutdown waiting for it never ends. Cancelling again
until the task is done ends it either way.

No imports from the project: every layer may use it.
"""
from __future__ import annotations

import asyncio
import contextvars
from typing import Any

# The context of timers and callbacks that read no context variables. Without one, asyncio copies the
# caller's context for each: time before a stream's first event, and an open run's timers wait for
# seconds, 64 bytes each per open run. (Sharing one is safe: the loop runs one callback at a time,
# and these set no variables.)
TIMER_CONTEXT = contextvars.Context()

# Seconds between cancellations of a task that did not end.
_AGAIN = 0.1


async def cancel_and_wait(task: asyncio.Task[Any]) -> None:
    """Cancel `task` and wait until it has ended, cancelling it again each `_AGAIN` s it goes on."""
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=_AGAIN)
