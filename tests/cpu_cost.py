"""CPU time of a piece of code, for the tests that compare the cost of n and 16n inputs.

The clock is this thread's (`time.thread_time`): `process_time` also counts whatever other threads
of the test process do meanwhile (a test server's thread, a worker left over from an earlier test).
The cyclic garbage collector is off while the code runs: a full collection walks every object the
whole suite keeps alive, so one landing inside the measured window cost more than the code itself
(CI, 2026-11-27: 16x the words measured 21x; the same pair measured 16-17x on its own).
"""
from __future__ import annotations

import gc
import time
from collections.abc import Iterator
from contextlib import contextmanager

clock = time.thread_time


@contextmanager
def no_collector() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
