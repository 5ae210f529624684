"""Resumable runs: event logs (in memory or in Redis Streams), subscribers, cancellation."""
from __future__ import annotations

from rhetor_stream.runs.manager import RunManager, id_prefix
from rhetor_stream.runs.memory import MemoryEventStore
from rhetor_stream.runs.store import EventStore
from rhetor_stream.settings import Settings


def open_store(settings: Settings) -> EventStore:
    """The event store `--event-store` names: `memory` or a `redis://` URL."""
    if settings.event_store == "memory":
        return MemoryEventStore(retention=settings.run_retention, max_events=settings.run_max_events,
                                max_bytes=settings.run_max_bytes, max_total_bytes=settings.run_store_max_bytes)
    from rhetor_stream.runs.redis_store import RedisEventStore
    return RedisEventStore(settings.event_store, retention=settings.run_retention,
                           max_events=settings.run_max_events, lease=settings.run_owner_lease,
                           buffer_bytes=settings.event_store_buffer_bytes,
                           connections=settings.event_store_connections)


__all__ = ["EventStore", "MemoryEventStore", "RunManager", "id_prefix", "open_store"]
