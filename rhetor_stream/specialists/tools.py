"""The specialist tools, registered in the default registry when this module is imported."""
from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Annotated, Any, Literal, Optional

from rhetor_stream.specialists.answer import answer
from rhetor_stream.specialists.service import SPECIALISTS, SpecialistService
from rhetor_stream.specialists.team import TeamChat, participants
from rhetor_stream.specialists.roster import ORCHESTRATOR
from rhetor_stream.tools.registry import (Bounds, Known, StreamCallback, ToolContext, ToolError, mcp_tool,
                                          streaming_tool)

MessageType = Literal["chat", "analysis", "coding", "planning", "review"]
Mode = Literal["round_robin", "parallel"]
Rounds = Annotated[int, Bounds(ge=1, le=10)]


def _roster(app: Any) -> Collection[str]:
    return app[SPECIALISTS].roster  # type: ignore[no-any-return]


_KNOWN_SPECIALIST = Known("specialist", _roster)
SpecialistId = Annotated[str, _KNOWN_SPECIALIST]
SpecialistIds = Annotated[Optional[list[str]], _KNOWN_SPECIALIST, Bounds(ge=1)]


def _service(context: ToolContext) -> SpecialistService:
    return context.app[SPECIALISTS]  # type: ignore[no-any-return]


def _one_answer(arguments: Mapping[str, Any], app: Any) -> int:
    """Token budget of asking one specialist: its max_tokens."""
    return app[SPECIALISTS].roster[arguments["specialist_id"]].max_tokens  # type: ignore[no-any-return]


def _team_chat(arguments: Mapping[str, Any], app: Any) -> int:
    """Token budget of a team chat: every participant's max_tokens each round, plus the summary."""
    service: SpecialistService = app[SPECIALISTS]
    try:
        speakers = participants(service, arguments.get("specialists"))
    except ToolError:
        return 0  # no participant: the tool itself refuses the call
    summariser = service.roster.get(ORCHESTRATOR)
    rounds: int = arguments.get("rounds", 2)
    return rounds * sum(speaker.max_tokens for speaker in speakers) + (summariser.max_tokens if summariser else 0)


@mcp_tool(name="ListSpecialists", description="List the AI specialists, their roles, providers and models.",
          tags=("specialists",))
async def list_specialists(*, _context: ToolContext) -> list[dict[str, Any]]:
    service = _service(_context)
    return [{**{key: value for key, value in specialist.describe().items() if key != "system_prompt"},
             "provider": service.provider(specialist).name if service.providers else specialist.provider,
             "model": service.model(specialist) if service.providers else specialist.model}
            for specialist in service.roster.values()]


@mcp_tool(name="SendMessageToSpecialist", description="Ask one specialist and return the whole answer.",
          tags=("specialists",), token_budget=_one_answer)
async def send_message_to_specialist(specialist_id: SpecialistId, message: str, message_type: MessageType = "chat",
                                     conversation_id: Optional[str] = None, *,
                                     _context: ToolContext) -> dict[str, Any]:
    service = _service(_context)
    return await answer(service, service.specialist(specialist_id), message, message_type=message_type,
                        conversation_id=conversation_id)


@mcp_tool(name="SendMessageToSpecialistStream",
          description="Ask one specialist and stream the answer in chunks (stream_options.chunk_size).",
          tags=("specialists", "streaming"), token_budget=_one_answer)
@streaming_tool
async def send_message_to_specialist_stream(specialist_id: SpecialistId, message: str,
                                            message_type: MessageType = "chat",
                                            conversation_id: Optional[str] = None, *,
                                            _stream_callback: StreamCallback,
                                            _context: ToolContext) -> dict[str, Any]:
    service = _service(_context)
    specialist = service.specialist(specialist_id)
    budget = specialist.max_tokens
    produced = 0

    async def chunk(text: str) -> None:
        nonlocal produced
        produced += len(text.split())
        # "progress" is the share of the answer's token budget used so far (an upper bound on the
        # answer's length is all anyone knows while it streams), capped below 100 until it ends.
        await _stream_callback("chunk", {"content": {"content": text, "specialist": specialist.id,
                                                     "progress": min(99.0, round(100 * produced / budget, 1))}})

    async def stage(name: str, message: str) -> None:
        await _stream_callback("progress", {"stage": name, "percentage": None, "message": message})

    result = await answer(service, specialist, message, message_type=message_type,
                          conversation_id=conversation_id, chunk_size=_context.chunk_size,
                          on_chunk=chunk, on_stage=stage)
    await _stream_callback("progress", {"stage": "finalizing", "percentage": 100,
                                        "message": f"{specialist.name} finished"})
    return result


@mcp_tool(name="OrchestrateTeamChat", description="Let specialists discuss a topic; return the transcript.",
          tags=("specialists",), token_budget=_team_chat)
async def orchestrate_team_chat(topic: str, specialists: SpecialistIds = None, rounds: Rounds = 2,
                                mode: Mode = "round_robin", *, _context: ToolContext) -> dict[str, Any]:
    service = _service(_context)
    return await TeamChat(service, topic, participants(service, specialists), rounds=rounds, mode=mode,
                          chunk_size=_context.chunk_size, emit=None).run()


@mcp_tool(name="OrchestrateTeamChatStream",
          description="Let specialists discuss a topic, streaming each turn as it is spoken.",
          tags=("specialists", "streaming"), token_budget=_team_chat)
@streaming_tool
async def orchestrate_team_chat_stream(topic: str, specialists: SpecialistIds = None, rounds: Rounds = 2,
                                       mode: Mode = "round_robin", *, _stream_callback: StreamCallback,
                                       _context: ToolContext) -> dict[str, Any]:
    service = _service(_context)
    return await TeamChat(service, topic, participants(service, specialists), rounds=rounds, mode=mode,
                          chunk_size=_context.chunk_size, emit=_stream_callback).run()
