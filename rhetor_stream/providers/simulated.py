"""The offline default: a deterministic stand-in for a model, so `make run` works with no key.

It reads the persona and task type from the system prompt the specialists module writes, picks out
the main terms of the user's message, and streams a structured, role-flavoured answer word by word at
a configurable pace. The answer says plainly that no model was called.
"""
from __future__ import annotations

import asyncio
import heapq
import re
from collections.abc import AsyncGenerator

from rhetor_stream.providers.base import ChatRequest, ChatStream, Provider

_PERSONA = re.compile(r"You are (?P<name>[^,\n]+), (?:the team's )?(?P<role>[^.\n]+)\.")
_TASK = re.compile(r"Task type: (?P<task>\w+)")
_TOPIC = re.compile(r"^Team discussion topic: (?P<topic>.+)$", re.MULTILINE)
_SPEAKER = re.compile(r"^([\w-]+): ", re.MULTILINE)
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9_-]{2,}")
_TOKEN = re.compile(r"\S+\s*")
_STOP = frozenset("this that with what from have will would could should about there their which when "
                  "where your into make please them they then than just also some more most review analyse plan "
                  "adopt use using need want build write create help "
                  "explain".split())

_PLANS = {
    "analysis": ("Analysis of {topic}", ["What is known: the request centres on {terms}.",
                                         "What is uncertain: the constraints and the success measure.",
                                         "What I would check first: the assumption behind {first}."]),
    "coding": ("Implementation notes on {topic}", ["Start with the smallest function that handles {first}.",
                                                   "Write a failing test for the edge cases of {terms}.",
                                                   "Keep the interface narrow and document why, not what."]),
    "planning": ("Plan for {topic}", ["Step 1: agree on the outcome and how to measure it.",
                                      "Step 2: break {terms} into tasks of a day or less.",
                                      "Step 3: do the riskiest part, {first}, first."]),
    "review": ("Review of {topic}", ["Strength: the intent around {first} is clear.",
                                     "Risk: {terms} may hide failure modes worth testing.",
                                     "Suggestion: add one check that proves the main claim."]),
    "coordination": ("Coordination on {topic}", ["Who does what: each of us takes one part of {terms}.",
                                                 "Order: settle {first} first; the rest depends on it.",
                                                 "Check-in: everyone reports what blocks them."]),
    "task_assignment": ("Task: {topic}", ["Restated: deliver {first} and nothing more.",
                                          "Result: a first version covering {terms}.",
                                          "Done when: it is checked against the request; no blockers."]),
    "critique": ("Critique of {topic}", ["Objection: the case for {first} is assumed, not shown.",
                                         "Counter-example to look for: where {terms} breaks under load or misuse.",
                                         "What would change my mind: one measurement, taken before deciding."]),
}
# In plain chat each role answers in its own manner: the first keyword found in the role decides.
_ROLE_MANNER = (("review", "review"), ("research", "analysis"), ("analys", "analysis"), ("plan", "planning"),
                ("critic", "critique"), ("engineer", "coding"), ("develop", "coding"))
_CHAT = ("On {topic}", ["My take, as {role}: focus on {first}.", "What matters most here: {terms}.",
                        "If it helps, I can go deeper on any one of them."])


class SimulatedProvider(Provider):
    name = "simulated"
    default_model = "simulated-1"

    def __init__(self, *, tokens_per_s: float) -> None:
        self._delay = 1.0 / tokens_per_s

    def stream(self, request: ChatRequest) -> ChatStream:
        return ChatStream(lambda chat: self._produce(chat, request))

    def compose(self, request: ChatRequest) -> str:
        persona = _PERSONA.search(request.system)
        name, role = (persona["name"], persona["role"]) if persona else ("Assistant", "a helpful assistant")
        task = _TASK.search(request.system)
        question = next((m.content for m in reversed(request.messages) if m.role == "user"), "")
        topic = _TOPIC.search(question)
        terms = _key_terms(topic["topic"] if topic else question)
        speakers = _SPEAKER.findall(question)
        first = _shorten(max(terms, key=len)) if terms else "the question"
        listed = ", ".join(map(_shorten, terms)) if terms else "the request"
        kind = task["task"] if task else "chat"
        if kind == "chat":
            kind = next((manner for keyword, manner in _ROLE_MANNER if keyword in role.lower()), kind)
        title, points = _PLANS.get(kind, _CHAT)
        fields = {"topic": _subject(topic["topic"] if topic else question) or first, "terms": listed,
                  "first": first, "role": role}
        lines = [f"[Simulated provider: no language model was called; this is {name}'s offline stand-in.]",
                 "", title.format(**fields) + ".", ""]
        lines += [f"- {point.format(**fields)}" for point in points]
        if speakers:
            lines += ["", f"Building on what {_shorten(speakers[-1])} said, I would not repeat it but test it."]
        lines += ["", f"In short: {first} deserves attention before anything else."]
        return "\n".join(lines)

    async def _produce(self, chat: ChatStream, request: ChatRequest) -> AsyncGenerator[str, None]:
        # Reading a message of up to the body limit takes a while (~0.1 s for 1 MiB): a worker
        # thread does it, so the event loop keeps serving everyone else meanwhile.
        tokens, chat.usage.input_tokens = await asyncio.to_thread(self._prepare, request)
        produced = 0
        for token in tokens:
            if produced >= request.max_tokens:
                chat.stop_reason = "max_tokens"
                break
            await asyncio.sleep(self._delay)
            produced += 1
            yield token
        else:
            chat.stop_reason = "end_turn"
        chat.usage.output_tokens = produced

    def _prepare(self, request: ChatRequest) -> tuple[list[str], int]:
        """The answer's tokens, and the input's size in words."""
        return (_TOKEN.findall(self.compose(request)),
                sum(len(message.content.split()) for message in request.messages))


def _shorten(word: str, limit: int = 40) -> str:
    """A word of the message as the answer repeats it: never so long that the answer grows with the
    message (a team chat sends every answer to every later turn)."""
    return word if len(word) <= limit else word[:limit - 1] + "\u2026"


def _subject(text: str, limit: int = 60) -> str:
    """The request itself, quoted and cut to one short line, so the answer's title names what was asked."""
    line = " ".join(text.split()).rstrip(".?!")
    if not line:
        return ""
    if len(line) > limit:
        line = line[:limit - 1].rstrip() + "\u2026"
    return f"\u201c{line}\u201d"


def _key_terms(text: str, limit: int = 3) -> list[str]:
    """The longest distinct words of the message, in the order they appear.

    Linear in the message (a set of the words seen, `nlargest` instead of sorting them all): any
    client can send one as long as the body limit.
    """
    words: list[str] = []
    seen: set[str] = set()
    for word in _WORD.findall(text):
        lowered = word.lower()
        if lowered not in _STOP and lowered not in seen:
            seen.add(lowered)
            words.append(word)
    longest = set(heapq.nlargest(limit, words, key=len))
    return [word for word in words if word in longest]
