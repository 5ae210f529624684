"""A request's `stream_options`: checked before the stream starts, so bad ones are a 400, not an event."""
from __future__ import annotations

from typing import Any

import attrs

from rhetor_stream.chunking import ChunkMode
from rhetor_stream.tools.registry import ArgumentError, preview

CHUNK_SIZES = tuple(mode.value for mode in ChunkMode)
MAX_RESUME_GRACE = 3600


@attrs.frozen
class StreamOptions:
    """The request's `stream_options`, checked before the stream starts."""

    include_progress: bool = True
    chunk_size: str = "sentence"
    resume_grace_s: float | None = None

    @classmethod
    def parse(cls, raw: Any) -> StreamOptions:
        if raw is None or raw == {}:  # (checked per request, before its first event)
            return _DEFAULTS
        if not isinstance(raw, dict):
            raise ArgumentError("stream_options", "must be a JSON object")
        unknown = sorted(raw.keys() - _KNOWN)
        if unknown:
            raise ArgumentError(f"stream_options.{unknown[0]}", f"unknown option (known: {', '.join(_KNOWN)})")
        include_progress = raw.get("include_progress", True)
        if not isinstance(include_progress, bool):
            raise ArgumentError("stream_options.include_progress", "must be true or false")
        chunk_size = raw.get("chunk_size", "sentence")
        if chunk_size not in CHUNK_SIZES:
            raise ArgumentError("stream_options.chunk_size", f"must be one of {', '.join(CHUNK_SIZES)}, "
                                f"got {preview(chunk_size)}")
        grace = raw.get("resume_grace_s")
        if grace is not None and (isinstance(grace, bool) or not isinstance(grace, (int, float))
                                  or not 0 <= grace <= MAX_RESUME_GRACE):
            raise ArgumentError("stream_options.resume_grace_s",
                                f"must be a number of seconds from 0 to {MAX_RESUME_GRACE}, got {preview(grace)}")
        return cls(include_progress=include_progress, chunk_size=chunk_size,
                   resume_grace_s=None if grace is None else float(grace))


_DEFAULTS = StreamOptions()
_KNOWN = tuple(field.name for field in attrs.fields(StreamOptions))
