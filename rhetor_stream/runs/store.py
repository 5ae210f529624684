"""Where a run's events live: the interface every event store implements.

A run's events are numbered 1, 2, 3... in the order the run produced them; the number is the event's
place in the log, so replaying "everything after 41" and then following the live tail can neither
skip nor repeat an event. Payloads are stored as encoded JSON so that every store hands subscribers
the same bytes, whichever process produced them.
"""
from __future__ import annotations

import abc
import itertools
import secrets
from collections.abc import Callable, Iterable, Sequence

import attrs

from rhetor_stream.errors import RhetorError

RUNNING = "running"
FINAL_STATUSES = ("complete", "error", "cancelled")
# Why a run ended when its events could no longer be kept (the code of its `error` event too).
STORE_UNAVAILABLE = "event_store_unavailable"


def unheard(run_id: str) -> None:
    """The default `on_overflow` of a store started without one (a test of the store alone)."""


def final_status(end_reason: str) -> str:
    """A run's status from why it ended: any end but success or a failure is a cancellation."""
    if end_reason == STORE_UNAVAILABLE:
        return "error"
    return end_reason if end_reason in ("complete", "error") else "cancelled"


@attrs.define
class StoredEvent:
    """One event of a run's log. Slotted, and not frozen: a frozen attrs class takes twice as long to
    make (every event of every run makes one), and a NamedTuple holds more memory per event."""

    seq: int
    event: str
    data: bytes


def stored_events(first: int, names: Iterable[str], datas: Iterable[bytes]) -> list[StoredEvent]:
    """Events `first`, `first + 1`, ... made from their names and data, for a reader. The stores keep
    no object per event (the garbage collector would walk each at every full collection): what a
    reader gets is made here, and dies young."""
    return list(map(StoredEvent, itertools.count(first), names, datas))


@attrs.frozen
class RunRecord:
    run_id: str
    tool_name: str
    status: str
    created: float
    finished: float | None = None
    owner: str = ""  # in a shared store, the process executing the run (the store fills it in)


class StoreUnavailable(RhetorError):
    """The event store cannot be reached right now; the message says where and why. Before a
    stream it is a 503 its caller may retry; at start-up, a one-line exit."""

    code = STORE_UNAVAILABLE
    status = 503
    advice = "try again shortly"


class StoreMisconfigured(StoreUnavailable):
    """The event store answers but refuses us (a wrong or missing password): waiting does not fix
    that, an operator does, so clients get no "try again" and the code says which it is."""

    code = "event_store_misconfigured"
    advice = ""


class EventsExpired(RhetorError):
    """The events a subscriber asked for were dropped by the store's size bound."""

    code = "events_expired"
    status = 410

    def __init__(self, run_id: str, first_kept: int) -> None:
        super().__init__(f"events of run {run_id} before #{first_kept} are no longer kept")
        self.first_kept = first_kept


class EventStore(abc.ABC):
    """An append-only event log per run, plus each run's status and cross-process cancellation."""

    #: True when every server process sees the same runs (what `--workers` needs).
    shared: bool = False
    #: What `/health` calls it.
    kind: str = "memory"

    async def start(self, on_cancel: Callable[[str], object],
                    on_overflow: Callable[[str], object] = unheard) -> None:
        """Begin serving; `on_cancel(run_id)` is called when any process asks to cancel a run, and
        `on_overflow(run_id)` when a run's events can no longer be kept (the run must end)."""
        self._on_cancel = on_cancel
        self._on_overflow = on_overflow

    async def close(self) -> None:
        """Release connections; events of finished runs stay until their retention ends."""

    async def problem(self) -> str | None:
        """Why the store cannot serve runs right now, or None when it can (for `/health`)."""
        return None

    async def shared_secret(self) -> bytes:
        """A random secret every process using this store agrees on (it signs run tokens); called
        once at start. A store of one process makes its own."""
        return secrets.token_bytes(32)

    @abc.abstractmethod
    async def create(self, record: RunRecord) -> None: ...

    @abc.abstractmethod
    def append(self, run_id: str, seq: int, event: str, data: bytes) -> bool:
        """Add event number `seq` (the one after the last) without waiting. True asks the producer to
        `wait_written` before the next one: the backpressure of a store that writes elsewhere (the
        memory store never asks). The parts rather than a StoredEvent: a store that keeps no object
        per event does not make one to throw away (every event of every run)."""

    async def wait_written(self, run_id: str) -> None:
        """Wait until appended events are durable enough to bound memory."""

    @abc.abstractmethod
    def end(self, run_id: str, status: str) -> None:
        """Record the final status without waiting; the log is kept for the retention time, then forgotten.

        A reader that has seen the run's last event must find the final status too (clients read the
        status right after the stream ends), so a store makes both visible at once.
        """

    @abc.abstractmethod
    async def get(self, run_id: str) -> RunRecord | None: ...

    @abc.abstractmethod
    async def read(self, run_id: str, after: int, *, wait: float) -> list[StoredEvent]:
        """Events after `after`, waiting up to `wait` seconds for the first one if none is there."""

    @abc.abstractmethod
    async def last_seq(self, run_id: str) -> int:
        """The number of the run's last stored event, 0 when it has none (or is unknown)."""

    @abc.abstractmethod
    async def request_cancel(self, run_id: str) -> None:
        """Ask the process executing `run_id` (this one or another) to cancel it."""

    async def reap(self, record: RunRecord, status: str, final: Sequence[tuple[str, bytes]]) -> bool:
        """End a run marked running whose process is gone: append `final` events and set `status`
        at once, unless the run ended or its process showed a sign of life. True if it did.

        Only a shared store can outlive the process that executes a run; in memory, a run and its
        process end together, so there is never anything to reap.
        """
        return False
