"""The specialist tools, which `create_app` serves next to the built-ins.

They also answer to the original Rhetor's names and arguments (`ListAISpecialists`, `context_id`,
`max_rounds`, `filter_by_*`), so a client written against it works unmodified.
"""
from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Annotated, Any, Literal

from aiohttp import web

from rhetor_stream.specialists.answer import answer
from rhetor_stream.specialists.service import SPECIALISTS, SpecialistService
from rhetor_stream.specialists.team import TeamChat, participants
from rhetor_stream.tools.registry import (
    Alias,
    Bounds,
    Known,
    StreamCallback,
    ToolContext,
    ToolError,
    mcp_tool,
    streaming_tool,
)

MessageType = Literal["chat", "analysis", "coding", "planning", "review", "coordination", "task_assignment"]
Mode = Literal["round_robin", "parallel"]
Style = Literal["collaborative", "directive", "exploratory"]
Rounds = Annotated[int, Bounds(ge=1, le=10), Alias("max_rounds")]
ConversationId = Annotated[str | None, Alias("context_id")]
# Every specialist in the roster is served: there is no other status (the original had more).
STATUS = "active"


def _roster(app: web.Application) -> Collection[str]:
    return app[SPECIALISTS].roster


_KNOWN_SPECIALIST = Known("specialist", _roster)
SpecialistId = Annotated[str, _KNOWN_SPECIALIST]
SpecialistIds = Annotated[list[str] | None, _KNOWN_SPECIALIST, Bounds(ge=1)]


def _service(context: ToolContext) -> SpecialistService:
    return context.app[SPECIALISTS]


def _one_answer(arguments: Mapping[str, Any], app: web.Application) -> int:
    """Token budget of asking one specialist: its max_tokens."""
    return app[SPECIALISTS].roster[arguments["specialist_id"]].max_tokens


def _team_chat(arguments: Mapping[str, Any], app: web.Application) -> int:
    """Token budget of a team chat: every turn it plans, at its speaker's max_tokens."""
    service = app[SPECIALISTS]
    try:
        speakers = participants(service, arguments.get("specialists"))
    except ToolError:
        return 0  # no participant: the tool itself refuses the call
    return TeamChat(service, "", speakers, rounds=arguments.get("rounds", 2), mode="round_robin", chunk_size="none",
                    emit=None, initial_prompt=arguments.get("initial_prompt"),
                    style=arguments.get("orchestration_style", "collaborative")).token_budget()


def _matches(value: str, wanted: str | None) -> bool:
    return wanted is None or value.casefold() == wanted.casefold()


@mcp_tool(name="ListAISpecialists", description="The original Rhetor's name for ListSpecialists.",
          tags=("specialists",))
@mcp_tool(name="ListSpecialists", description="List the AI specialists, their roles, providers and models; "
          "optionally only those of one status, role or component.", tags=("specialists",))
async def list_specialists(status: Annotated[str | None, Alias("filter_by_status")] = None,
                           role: Annotated[str | None, Alias("filter_by_type")] = None,
                           component: Annotated[str | None, Alias("filter_by_component")] = None, *,
                           _context: ToolContext) -> list[dict[str, Any]]:
    service = _service(_context)
    return [{**{key: value for key, value in specialist.describe().items() if key != "system_prompt"},
             "status": STATUS,
             "provider": service.provider(specialist).name if service.providers else specialist.provider,
             "model": service.model(specialist) if service.providers else specialist.model}
            for specialist in service.roster.values()
            if _matches(STATUS, status) and _matches(specialist.role, role)
            and _matches(specialist.component, component)]


@mcp_tool(name="SendMessageToSpecialist", description="Ask one specialist and return the whole answer.",
          tags=("specialists",), token_budget=_one_answer)
async def send_message_to_specialist(specialist_id: SpecialistId, message: str, message_type: MessageType = "chat",
                                     conversation_id: ConversationId = None, *,
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
                                            conversation_id: ConversationId = None, *,
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
                                mode: Mode = "round_robin", initial_prompt: str | None = None,
                                orchestration_style: Style = "collaborative", *,
                                _context: ToolContext) -> dict[str, Any]:
    service = _service(_context)
    return await TeamChat(service, topic, participants(service, specialists), rounds=rounds, mode=mode,
                          chunk_size=_context.chunk_size, emit=None, initial_prompt=initial_prompt,
                          style=orchestration_style).run()


@mcp_tool(name="OrchestrateTeamChatStream",
          description="Let specialists discuss a topic, streaming each turn as it is spoken.",
          tags=("specialists", "streaming"), token_budget=_team_chat)
@streaming_tool
async def orchestrate_team_chat_stream(topic: str, specialists: SpecialistIds = None, rounds: Rounds = 2,
                                       mode: Mode = "round_robin", initial_prompt: str | None = None,
                                       orchestration_style: Style = "collaborative", *,
                                       _stream_callback: StreamCallback,
                                       _context: ToolContext) -> dict[str, Any]:
    service = _service(_context)
    return await TeamChat(service, topic, participants(service, specialists), rounds=rounds, mode=mode,
                          chunk_size=_context.chunk_size, emit=_stream_callback, initial_prompt=initial_prompt,
                          style=orchestration_style).run()
