"""Team chat: specialists discuss a topic, each seeing the transcript so far.

`round_robin` streams the current speaker's chunks as they come and one `message` per finished turn;
`parallel` asks everyone in a round at once and sends each `message` the moment that specialist is
done. A specialist that fails, exceeds its time or whose answer is cut short yields an error-flagged
message (`error`, `code`, and any `partial_content`) instead of stalling the discussion. Progress is
turns finished over turns planned.

The coordinator (`rhetor-orchestrator`, when the roster has it) frames the topic and the opening
prompt in round 0 when there is one, and closes with a summary numbered with the last round. The
orchestration style decides how it runs the rounds in between:
- `collaborative`: every specialist sees everything said so far and builds on it;
- `directive`: the coordinator opens each round by assigning every specialist a task, which they
  then carry out (message type `task_assignment`);
- `exploratory`: the speaking order rotates each round, and within a round the specialists see only
  what was said before it, so each brings an independent angle; the summary maps the options
  instead of forcing a decision.
"""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from rhetor_stream.providers.base import UpstreamError
from rhetor_stream.specialists.answer import answer
from rhetor_stream.specialists.prompts import ORCHESTRATION_STYLES, assignments, opening, team_turn
from rhetor_stream.specialists.roster import ORCHESTRATOR, Specialist
from rhetor_stream.specialists.service import SpecialistService
from rhetor_stream.tools.registry import ToolError
from rhetor_stream.wording import plural

Emit = Callable[[str, dict[str, Any]], Awaitable[None]]


async def _nowhere(event: str, data: dict[str, Any]) -> None:
    """Where the events of the non-streaming variant go."""


class TeamChat:
    def __init__(self, service: SpecialistService, topic: str, participants: list[Specialist], *,
                 rounds: int, mode: str, chunk_size: str, emit: Emit | None,
                 initial_prompt: str | None = None, style: str = "collaborative") -> None:
        self.service = service
        self.topic = topic
        self.participants = participants
        self.rounds = rounds
        self.mode = mode
        self.chunk_size = chunk_size
        self.emit = emit or _nowhere
        self.initial_prompt = initial_prompt
        self.style = style
        self.coordinator = service.roster.get(ORCHESTRATOR)
        self.opens = self.coordinator is not None and bool(initial_prompt)
        self.assigns = self.coordinator is not None and style == "directive"
        self.planned = (rounds * (len(participants) + int(self.assigns)) + int(self.opens)
                        + (1 if self.coordinator else 0))
        self.transcript: list[dict[str, Any]] = []

    def token_budget(self) -> int:
        """The most tokens the chat may use: every planned turn at its speaker's max_tokens."""
        coordinator_turns = self.planned - self.rounds * len(self.participants)
        return (self.rounds * sum(specialist.max_tokens for specialist in self.participants)
                + (coordinator_turns * self.coordinator.max_tokens if self.coordinator else 0))

    async def run(self) -> dict[str, Any]:
        await self._progress("starting", f"{plural(len(self.participants), 'specialist')}, "
                                         f"{plural(self.rounds, 'round')}, {self.mode}, {self.style}")
        stream_chunks = self.mode != "parallel"
        names = [specialist.name for specialist in self.participants]
        if self.coordinator is not None and self.opens:
            await self._record(await self._turn(self.coordinator, 0, opening(names), "coordination",
                                                stream_chunks=stream_chunks, flag="opening"))
        for round_number in range(1, self.rounds + 1):
            if self.coordinator is not None and self.assigns:
                await self._record(await self._turn(self.coordinator, round_number,
                                                    assignments(names, round_number), "coordination",
                                                    stream_chunks=stream_chunks, flag="assignment"))
            await self._round(round_number)
        summary = None
        if self.coordinator is not None:
            entry = await self._turn(self.coordinator, self.rounds, ORCHESTRATION_STYLES[self.style][1], "planning",
                                     stream_chunks=stream_chunks, flag="summary")
            await self._record(entry)
            summary = entry["content"]
        return {"topic": self.topic, "mode": self.mode, "rounds": self.rounds, "orchestration_style": self.style,
                "initial_prompt": self.initial_prompt,
                "participants": [specialist.id for specialist in self.participants],
                "transcript": self.transcript, "summary": summary}

    async def _round(self, round_number: int) -> None:
        speakers = self.participants
        if self.style == "exploratory":  # nobody always speaks first, nobody always has the last word
            shift = (round_number - 1) % len(speakers)
            speakers = speakers[shift:] + speakers[:shift]
        instruction = ORCHESTRATION_STYLES[self.style][0]
        message_type = "task_assignment" if self.assigns else "chat"
        if self.mode == "parallel":
            turns = [asyncio.ensure_future(self._turn(specialist, round_number, instruction, message_type,
                                                      stream_chunks=False))
                     for specialist in speakers]
            try:
                for finished in asyncio.as_completed(turns):
                    await self._record(await finished)
            finally:
                for turn in turns:
                    turn.cancel()
            return
        seen = len(self.transcript) if self.style == "exploratory" else None
        for specialist in speakers:
            await self._record(await self._turn(specialist, round_number, instruction, message_type,
                                                stream_chunks=True, seen=seen))

    async def _turn(self, specialist: Specialist, round_number: int, instruction: str, message_type: str, *,
                    stream_chunks: bool, flag: str | None = None, seen: int | None = None) -> dict[str, Any]:
        """One turn; it sees the transcript (its first `seen` entries when given) minus failed turns."""
        said = [(entry["speaker"], entry["content"]) for entry in self.transcript[:seen] if not entry.get("error")]
        message = team_turn(self.topic, said, instruction, initial_prompt=self.initial_prompt)

        async def chunk(text: str) -> None:
            await self.emit("chunk", {"content": {"content": text, "specialist": specialist.id,
                                                  "name": specialist.name, "round": round_number}})

        entry: dict[str, Any] = {"speaker": specialist.id, "name": specialist.name, "round": round_number}
        if flag is not None:
            entry[flag] = True
        try:
            result = await asyncio.wait_for(
                answer(self.service, specialist, message, message_type=message_type,
                       chunk_size=self.chunk_size, on_chunk=chunk if stream_chunks else None),
                self.service.specialist_timeout)
            entry["content"] = result["content"]
        except TimeoutError:
            entry.update(content="", error=f"{specialist.name} gave no answer within "
                                           f"{self.service.specialist_timeout:g} s", code="upstream_timeout")
        except UpstreamError as exc:
            # A failed turn says so, whatever arrived before it failed (kept in partial_content).
            entry.update(content="", error=exc.message, code=exc.code, **exc.details)
        return entry

    async def _record(self, entry: dict[str, Any]) -> None:
        self.transcript.append(entry)
        await self.emit("message", entry)
        what = next((flag for flag in ("opening", "assignment", "summary") if entry.get(flag)), None)
        await self._progress("discussing", f"{entry['name']} finished the {what}" if what
                             else f"{entry['name']} finished round {entry['round']}")

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
