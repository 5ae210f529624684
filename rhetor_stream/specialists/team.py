"""Team chat: specialists discuss a topic, each seeing the transcript so far.

`round_robin` streams the current speaker's chunks as they come and one `message` per finished turn;
`parallel` asks everyone in a round at once and sends each `message` the moment that specialist is
done. A specialist that fails, exceeds its time or whose answer is cut short yields an error-flagged
message (`error`, `code`, and any `partial_content`) instead of stalling the discussion. Progress is
turns finished over turns planned.
"""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from rhetor_stream.providers.base import UpstreamError
from rhetor_stream.specialists.answer import answer
from rhetor_stream.specialists.prompts import team_turn
from rhetor_stream.specialists.roster import ORCHESTRATOR, Specialist
from rhetor_stream.specialists.service import SpecialistService
from rhetor_stream.tools.registry import ToolError

Emit = Callable[[str, dict[str, Any]], Awaitable[None]]


async def _nowhere(event: str, data: dict[str, Any]) -> None:
    """Where the events of the non-streaming variant go."""


class TeamChat:
    def __init__(self, service: SpecialistService, topic: str, participants: list[Specialist], *,
                 rounds: int, mode: str, chunk_size: str, emit: Emit | None) -> None:
        self.service = service
        self.topic = topic
        self.participants = participants
        self.rounds = rounds
        self.mode = mode
        self.chunk_size = chunk_size
        self.emit = emit or _nowhere
        self.summariser = service.roster.get(ORCHESTRATOR)
        self.planned = rounds * len(participants) + (1 if self.summariser else 0)
        self.transcript: list[dict[str, Any]] = []

    async def run(self) -> dict[str, Any]:
        await self._progress("starting", f"{len(self.participants)} specialists, {self.rounds} rounds, {self.mode}")
        for round_number in range(1, self.rounds + 1):
            if self.mode == "parallel":
                await self._parallel_round(round_number)
            else:
                for specialist in self.participants:
                    await self._record(await self._turn(specialist, round_number, stream_chunks=True))
        summary = None
        if self.summariser is not None:
            entry = await self._turn(self.summariser, self.rounds + 1, stream_chunks=self.mode != "parallel",
                                     summary=True)
            await self._record(entry)
            summary = entry["content"]
        return {"topic": self.topic, "mode": self.mode, "rounds": self.rounds,
                "participants": [specialist.id for specialist in self.participants],
                "transcript": self.transcript, "summary": summary}

    async def _parallel_round(self, round_number: int) -> None:
        turns = [asyncio.ensure_future(self._turn(specialist, round_number, stream_chunks=False))
                 for specialist in self.participants]
        try:
            for finished in asyncio.as_completed(turns):
                await self._record(await finished)
        finally:
            for turn in turns:
                turn.cancel()

    async def _turn(self, specialist: Specialist, round_number: int, *, stream_chunks: bool,
                    summary: bool = False) -> dict[str, Any]:
        said = [(entry["speaker"], entry["content"]) for entry in self.transcript if not entry.get("error")]
        message = team_turn(self.topic, said, summary=summary)

        async def chunk(text: str) -> None:
            await self.emit("chunk", {"content": {"content": text, "specialist": specialist.id,
                                                  "round": round_number}})

        entry: dict[str, Any] = {"speaker": specialist.id, "name": specialist.name, "round": round_number}
        if summary:
            entry["summary"] = True
        try:
            result = await asyncio.wait_for(
                answer(self.service, specialist, message, message_type="planning" if summary else "chat",
                       chunk_size=self.chunk_size, on_chunk=chunk if stream_chunks else None),
                self.service.specialist_timeout)
            entry["content"] = result["content"]
        except asyncio.TimeoutError:
            entry.update(content="", error=f"{specialist.name} gave no answer within "
                                           f"{self.service.specialist_timeout:g} s", code="upstream_timeout")
        except UpstreamError as exc:
            # A failed turn says so, whatever arrived before it failed (kept in partial_content).
            entry.update(content="", error=exc.message, code=exc.code, **exc.details)
        return entry

    async def _record(self, entry: dict[str, Any]) -> None:
        self.transcript.append(entry)
        await self.emit("message", entry)
        await self._progress("discussing", f"{entry['name']} finished round {entry['round']}")

    async def _progress(self, stage: str, message: str) -> None:
        percentage = round(100 * len(self.transcript) / self.planned, 1) if self.planned else 100
        await self.emit("progress", {"stage": stage, "percentage": percentage, "message": message,
                                     "turns_done": len(self.transcript), "turns_planned": self.planned})


def participants(service: SpecialistService, ids: list[str] | None) -> list[Specialist]:
    if ids is None:
        chosen = [specialist for specialist in service.roster.values() if specialist.id != ORCHESTRATOR]
    else:
        chosen = [service.specialist(specialist_id) for specialist_id in dict.fromkeys(ids)]
    if not chosen:
        raise ToolError("a team chat needs at least one specialist", code="invalid_arguments")
    return chosen
