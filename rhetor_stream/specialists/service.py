"""The specialists service an app holds: roster, providers over one HTTP session, and memory."""
from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import attrs
from aiohttp import web

from rhetor_stream.providers import ChatRequest, ChatStream, Provider, build_providers
from rhetor_stream.settings import PROVIDERS, Settings
from rhetor_stream.specialists.memory import ConversationMemory
from rhetor_stream.specialists.prompts import MESSAGE_TYPES, chat_messages
from rhetor_stream.specialists.roster import Specialist, load_roster
from rhetor_stream.tools.registry import ToolError


@attrs.define
class SpecialistService:
    roster: dict[str, Specialist]
    default_provider: str
    specialist_timeout: float
    memory: ConversationMemory = attrs.Factory(ConversationMemory)
    providers: dict[str, Provider] = attrs.Factory(dict)

    def specialist(self, specialist_id: str) -> Specialist:
        specialist = self.roster.get(specialist_id)
        if specialist is None:
            raise ToolError(f"no specialist {specialist_id!r}; ListSpecialists shows: "
                            f"{', '.join(self.roster)}", code="unknown_specialist")
        return specialist

    def provider(self, specialist: Specialist) -> Provider:
        return self.providers[specialist.provider or self.default_provider]

    def model(self, specialist: Specialist) -> str:
        return specialist.model or self.provider(specialist).default_model

    def ask(self, specialist: Specialist, message: str, message_type: str,
            conversation_id: str | None = None) -> ChatStream:
        if message_type not in MESSAGE_TYPES:
            raise ToolError(f"unknown message_type {message_type!r}; use one of {', '.join(MESSAGE_TYPES)}",
                            code="invalid_arguments")
        history = self.memory.history(specialist.id, conversation_id)
        request = ChatRequest(chat_messages(specialist, message, message_type, history),
                              model=self.model(specialist), temperature=specialist.temperature,
                              max_tokens=specialist.max_tokens)
        return self.provider(specialist).stream(request)


SPECIALISTS = web.AppKey("specialists", SpecialistService)


def setup(app: web.Application, settings: Settings) -> None:
    """Load the roster now (a bad file stops start-up with a clear message); open the shared HTTP
    session when the app starts and close it when it stops."""
    service = SpecialistService(load_roster(settings.specialists, PROVIDERS), settings.provider,
                                settings.specialist_timeout)
    app[SPECIALISTS] = service

    async def session(app: web.Application) -> AsyncIterator[None]:
        async with aiohttp.ClientSession() as http:
            service.providers = build_providers(settings, http)
            yield
            service.providers = {}

    app.cleanup_ctx.append(session)
