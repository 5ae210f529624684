"""Conversation memory: the last turns per (specialist, conversation), bounded every way."""
from __future__ import annotations

from collections import OrderedDict, deque

from rhetor_stream.providers.base import ChatMessage


class ConversationMemory:
    """Keeps at most `max_turns` messages and `max_chars` characters per conversation, and at most
    `max_conversations` conversations (the least recently used is forgotten first)."""

    def __init__(self, *, max_turns: int = 20, max_chars: int = 24_000, max_conversations: int = 1000) -> None:
        self._max_turns = max_turns
        self._max_chars = max_chars
        self._max_conversations = max_conversations
        self._conversations: OrderedDict[tuple[str, str], deque[ChatMessage]] = OrderedDict()

    def history(self, specialist_id: str, conversation_id: str | None) -> list[ChatMessage]:
        if conversation_id is None:
            return []
        key = (specialist_id, conversation_id)
        turns = self._conversations.get(key)
        if turns is None:
            return []
        self._conversations.move_to_end(key)
        return list(turns)

    def remember(self, specialist_id: str, conversation_id: str | None, question: str, answer: str) -> None:
        if conversation_id is None:
            return
        key = (specialist_id, conversation_id)
        turns = self._conversations.setdefault(key, deque())
        self._conversations.move_to_end(key)
        turns.extend((ChatMessage("user", question), ChatMessage("assistant", answer)))
        while turns and (len(turns) > self._max_turns or sum(len(m.content) for m in turns) > self._max_chars):
            turns.popleft()
            if turns and turns[0].role == "assistant":
                turns.popleft()  # never keep an answer without its question
        while len(self._conversations) > self._max_conversations:
            self._conversations.popitem(last=False)
