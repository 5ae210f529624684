"""The events a process holds for the shared store: one budget in real bytes, written events
forgotten first (oldest first across runs), unwritten ones never."""
from __future__ import annotations

import time
import tracemalloc

import pytest

from rhetor_stream.runs.held import EVENT_OVERHEAD, LINGER, HeldEvents, cost
from rhetor_stream.stream.channel import encode_payload


def _event(seq: int, size: int = 100) -> tuple[int, str, bytes]:
    return seq, "chunk", encode_payload({"text": "x" * size, "seq": seq})


def test_written_events_make_room_oldest_first_across_runs() -> None:
    # Room for a1-a10 and b1-b10, and less than one event to spare.
    held = HeldEvents(limit=2 * sum(cost(_event(seq)[2]) for seq in range(1, 11)) + 10)
    a, b = held.open("a"), held.open("b")
    for seq in range(1, 11):
        assert held.add(a, *_event(seq))
        assert held.add(b, *_event(seq))
    a.written = b.written = 10
    for seq in range(11, 16):
        assert held.add(a, *_event(seq))  # each makes room by forgetting a written event
    assert held.bytes <= held.limit
    assert (a.oldest(), b.oldest()) == (4, 3)  # a1 b1 a2 b2 a3 went, in the order added
    assert a.oldest() + len(a.datas) - 1 == 15  # what is held stays consecutive
    assert a.covers(a.oldest() - 1) and not a.covers(a.oldest() - 2)
    assert [event.seq for event in a.after(13, a.last)] == [14, 15]
    assert [event.seq for event in a.after(13, 14)] == [14]  # not above what followers may see
    assert [event.seq for event in a.after(4, 6)] == [5, 6]  # (read from the deque's near end)
    assert [event.seq for event in a.after(12, 11)] == []


def test_unwritten_events_are_never_forgotten() -> None:
    held = HeldEvents(limit=5 * (130 + EVENT_OVERHEAD))
    run = held.open("a")
    results = [held.add(run, *_event(seq)) for seq in range(1, 11)]
    assert results[:4] == [True] * 4 and not results[-1]  # over the budget: the caller must act
    unwritten = run.unwritten()
    assert (unwritten.first, unwritten.last, len(unwritten.datas)) == (1, 10, 10)
    run.written = 10
    assert held.make_room() and held.bytes <= held.limit
    held.close(run, linger=False)
    assert held.bytes == 0 and held.runs() == []


def test_a_finished_run_lingers_for_its_followers_within_the_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    held = HeldEvents(limit=4 * (130 + EVENT_OVERHEAD))
    run = held.open("a")
    for seq in range(1, 4):
        held.add(run, *_event(seq))
    run.written = 3
    held.close(run)
    assert held.runs() == [] and held.get("a") is None  # nothing to write any more
    assert held.readable("a") is run and [event.seq for event in run.after(1, run.written)] == [2, 3]
    other = held.open("b")
    for seq in range(1, 3):
        held.add(other, *_event(seq))  # over the budget: the finished run's oldest event goes first
    assert held.bytes <= held.limit and run.oldest() == 2
    later = time.monotonic() + LINGER
    monkeypatch.setattr(time, "monotonic", lambda: later)
    held.make_room()
    assert held.readable("a") is None and held.bytes == sum(map(cost, other.datas))


def test_the_budget_counts_the_bytes_really_held() -> None:
    # orjson.dumps results keep ~4 KiB each whatever their length; what the recorder stores does not.
    held = HeldEvents(limit=1 << 40)
    run = held.open("a")
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for seq in range(1000, 6000):
            held.add(run, *_event(seq, size=20))
        used = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert 0.5 < used / held.bytes < 1.5
