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
    # The original Rhetor's two other message types: a specialist coordinating others, and a
    # specialist being handed a piece of work.
    "coordination": "Coordinate: say who should do what next, what each needs from the others, and in "
                    "which order; one line per person.",
    "task_assignment": "This is a task assigned to you: restate it in one line, deliver it, and end with "
                       "what done looks like and anything that blocks you.",
}

# How the coordinator runs a team chat. Each style changes the shape of the chat (see team.py) and
# what every turn is asked to do: (a specialist's turn, the coordinator's closing summary).
ORCHESTRATION_STYLES = {
    "collaborative": ("Add your contribution; build on what was said and do not repeat it.",
                      "Summarise the discussion: decisions, open questions and next steps."),
    "directive": ("Do the task the coordinator assigned you for this round and report the result briefly.",
                  "Close the discussion: each decision taken, each next step with its owner."),
    "exploratory": ("Bring an angle nobody has raised yet; question what was said rather than agree with it.",
                    "Map the discussion: the options raised, their trade-offs and what to explore next; "
                    "do not force a decision."),
}


def system_prompt(specialist: Specialist, message_type: str) -> str:
    # The first two lines have a fixed shape: the simulated provider reads the persona from them.
    return (f"You are {specialist.name}, the team's {specialist.role}.\nTask type: {message_type}\n"
            f"{specialist.system_prompt}\n{MESSAGE_TYPES[message_type]}")


def chat_messages(specialist: Specialist, message: str, message_type: str,
                  history: Sequence[ChatMessage] = ()) -> tuple[ChatMessage, ...]:
    return (ChatMessage("system", system_prompt(specialist, message_type)), *history,
            ChatMessage("user", message))


def team_turn(topic: str, transcript: Sequence[tuple[str, str]], instruction: str, *,
              initial_prompt: str | None = None) -> str:
    """The user message of a team-chat turn: the topic, the opening prompt, everything said so far
    (that this turn may see), and what this turn is asked to do."""
    lines = [f"Team discussion topic: {topic}"]
    if initial_prompt:
        lines.append(f"Opening prompt: {initial_prompt}")
    if transcript:
        lines += ["", "Said so far:"] + [f"{speaker}: {content}" for speaker, content in transcript]
    return "\n".join([*lines, "", instruction])


def opening(names: Sequence[str]) -> str:
    """What the coordinator is asked in round 0, when the chat has an opening prompt."""
    return (f"Open the discussion: frame the topic and the opening prompt in a few lines (what must be "
            f"decided, what is out of scope) and say what you want from each of: {', '.join(names)}.")


def assignments(names: Sequence[str], round_number: int) -> str:
    """What the coordinator is asked at the start of each round of a directive chat."""
    return (f"Round {round_number}: give each of {', '.join(names)} one concrete task for this round, "
            "one line each, as 'name: task'.")
