"""Specialists: who they are, and the roster file that lists them."""
from __future__ import annotations

import json
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

import attrs

from rhetor_stream.settings import SettingsError

ORCHESTRATOR = "rhetor-orchestrator"


class RosterError(SettingsError):
    """A roster file that cannot be used; the message names the file, and the line or field (a
    SettingsError: start-up stops with that one line)."""


@attrs.frozen(kw_only=True)
class Specialist:
    id: str
    name: str
    role: str
    description: str
    system_prompt: str
    provider: str = ""  # empty: the server's --provider
    model: str = ""  # empty: the provider's default model
    component: str = ""  # the part of the system it speaks for (ListAISpecialists' filter_by_component)
    temperature: float = 0.7
    max_tokens: int = 1024

    def describe(self) -> dict[str, Any]:
        return attrs.asdict(self)


_REQUIRED = ("id", "name", "role", "description", "system_prompt")
_TYPES: dict[str, tuple[type, ...]] = {"temperature": (int, float), "max_tokens": (int,)}


def load_roster(path: Path | None, providers: tuple[str, ...]) -> dict[str, Specialist]:
    """The roster of `path` (TOML or JSON), or the built-in one; by id, in file order."""
    if path is None:
        text = resources.files("rhetor_stream").joinpath("data/specialists.toml").read_text("utf-8")
        source = "the built-in roster"
    else:
        try:
            text = path.read_text("utf-8")
        except OSError as exc:
            raise RosterError(f"cannot read specialists file {path}: {exc.strerror}") from None
        source = str(path)
    data = _parse(text, source, json_file=path is not None and path.suffix.lower() == ".json")
    entries = data.get("specialist") if isinstance(data, dict) else data
    if not isinstance(entries, list) or not entries:
        raise RosterError(f"{source}: expected a list of specialists ([[specialist]] tables in TOML, "
                          "a list or {\"specialist\": [...]} in JSON)")
    roster: dict[str, Specialist] = {}
    for index, entry in enumerate(entries, start=1):
        specialist = _specialist(entry, f"{source}: specialist #{index}", providers)
        if specialist.id in roster:
            raise RosterError(f"{source}: specialist #{index}: id {specialist.id!r} is used twice")
        roster[specialist.id] = specialist
    return roster


def _parse(text: str, source: str, *, json_file: bool) -> Any:
    if json_file:
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise RosterError(f"{source}: line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RosterError(f"{source}: {exc}") from None


def _specialist(entry: Any, where: str, providers: tuple[str, ...]) -> Specialist:
    if not isinstance(entry, dict):
        raise RosterError(f"{where}: expected a table of fields")
    known = {field.name for field in attrs.fields(Specialist)}
    unknown = sorted(set(entry) - known)
    if unknown:
        raise RosterError(f"{where}: unknown field {unknown[0]!r} (fields: {', '.join(sorted(known))})")
    for name in _REQUIRED:
        if not isinstance(entry.get(name), str) or not entry[name].strip():
            raise RosterError(f"{where}: field {name!r} must be a non-empty string")
    for name, kinds in _TYPES.items():
        if name in entry and (isinstance(entry[name], bool) or not isinstance(entry[name], kinds)):
            raise RosterError(f"{where} ({entry['id']}): field {name!r} must be a number")
    if entry.get("provider", "") not in ("", *providers):
        raise RosterError(f"{where} ({entry['id']}): field 'provider' must be one of {', '.join(providers)}")
    if not 0 <= entry.get("temperature", 0.7) <= 2 or entry.get("max_tokens", 1024) < 1:
        raise RosterError(f"{where} ({entry['id']}): temperature must be 0-2 and max_tokens at least 1")
    return Specialist(**entry)
