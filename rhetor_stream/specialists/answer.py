"""One specialist answering: model deltas in, meaningful chunks and honest stages out."""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from rhetor_stream.chunking import Chunker, pieces
from rhetor_stream.specialists.roster import Specialist
from rhetor_stream.specialists.service import SpecialistService

ChunkSink = Callable[[str], Awaitable[None]]
StageSink = Callable[[str, str], Awaitable[None]]


async def answer(service: SpecialistService, specialist: Specialist, message: str, *, message_type: str,
                 conversation_id: str | None = None, chunk_size: str = "sentence",
                 on_chunk: ChunkSink | None = None, on_stage: StageSink | None = None) -> dict[str, Any]:
    """Ask `specialist`, pass each complete chunk to `on_chunk`, and return the whole answer."""
    stream = service.ask(specialist, message, message_type, conversation_id)
    chunker = Chunker(chunk_size)
    parts: list[str] = []
    if on_stage is not None:
        await on_stage("waiting_for_model", f"Waiting for {specialist.name} ({service.model(specialist)})")
    try:
        async for delta in stream:
            if not parts and on_stage is not None:
                await on_stage("streaming", f"{specialist.name} is answering")
            parts.append(delta)
            if on_chunk is not None:
                for piece in pieces(delta):  # a model may send a megabyte in one delta
                    for chunk in chunker.feed(piece):
                        await on_chunk(chunk)
    finally:
        await stream.aclose()
    if on_chunk is not None:
        for chunk in chunker.flush():
            await on_chunk(chunk)
    text = "".join(parts)
    service.memory.remember(specialist.id, conversation_id, message, text)
    return {"specialist": specialist.id, "name": specialist.name, "content": text,
            "provider": service.provider(specialist).name, "model": service.model(specialist),
            "usage": {"input_tokens": stream.usage.input_tokens, "output_tokens": stream.usage.output_tokens},
            "stop_reason": stream.stop_reason}
