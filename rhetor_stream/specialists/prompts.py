"""What is sent to the model: persona, task type, history and the message."""
from __future__ import annotations

from collections.abc import Sequence

from rhetor_stream.providers.base import ChatMessage
from rhetor_stream.specialists.roster import Specialist

MESSAGE_TYPES = {
    "chat": "Answer conversationally and briefly.",
    "analysis": "Analyse: separate what is known from what is assumed, and say how confident you are.",
    "coding": "Answer as an engineer: concrete code or steps, edge cases, and how to test them.",
    "planning": "Produce an ordered plan of small steps, each with a done-condition; flag the riskiest.",
    "review": "Review critically: the most important problems first, each with a concrete fix.",
}


def system_prompt(specialist: Specialist, message_type: str) -> str:
    # The first two lines have a fixed shape: the simulated provider reads the persona from them.
    return (f"You are {specialist.name}, the team's {specialist.role}.\nTask type: {message_type}\n"
            f"{specialist.system_prompt}\n{MESSAGE_TYPES[message_type]}")


def chat_messages(specialist: Specialist, message: str, message_type: str,
                  history: Sequence[ChatMessage] = ()) -> tuple[ChatMessage, ...]:
    return (ChatMessage("system", system_prompt(specialist, message_type)), *history,
            ChatMessage("user", message))


def team_turn(topic: str, transcript: Sequence[tuple[str, str]], *, summary: bool = False) -> str:
    """The user message of a team-chat turn: the topic and everything said so far."""
    lines = [f"Team discussion topic: {topic}"]
    if transcript:
        lines += ["", "Said so far:"] + [f"{speaker}: {content}" for speaker, content in transcript]
    lines += ["", "Summarise the discussion: decisions, open questions and next steps." if summary
              else "Add your contribution; build on what was said and do not repeat it."]
    return "\n".join(lines)
