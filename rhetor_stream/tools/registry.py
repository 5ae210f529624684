"""Tools: `@mcp_tool` describes a plain function as a named, schema-described tool, and a
`ToolRegistry` holds the tools one app serves.

The decorator registers nothing: it builds the Tool and marks the function with it. Which tools a
server serves is up to the app (`create_app` adds the built-ins, the specialists' tools and those of
the `--tools` modules to a registry of its own), so two apps in one process never see each other's
tools, and importing a module has no effect beyond defining its functions.

The input JSON Schema is derived from the signature (type hints and defaults) so the schema a client
sees and the validation the server applies are one and the same. Parameters whose names start with an
underscore are injected by the server (`_stream_callback`, `_context`) and never appear in the schema.
Bounds on numbers are declared with `Annotated[float, Bounds(ge=0)]`; another name a client may use
for a parameter (say, the name an older API gave it) with `Annotated[..., Alias("old_name")]`.
"""
from __future__ import annotations

import asyncio
import functools
import inspect
import reprlib
import types
import typing
from collections.abc import Awaitable, Callable, Collection, Iterator, Mapping
from typing import Any, Literal, Protocol, TypeVar, Union, get_args, get_origin

import attrs
from aiohttp import web

from rhetor_stream.errors import RhetorError

__all__ = [
    "Alias", "ArgumentError", "Bounds", "DuplicateToolError", "StreamCallback", "Tool", "ToolContext", "ToolError",
    "ToolRegistry", "mcp_tool", "preview", "streaming_tool", "tools_of",
]

STREAM_CALLBACK = "_stream_callback"
CONTEXT = "_context"
_STREAMING_MARK = "__rhetor_streaming__"
_TOOLS_MARK = "__rhetor_tools__"

F = TypeVar("F", bound=Callable[..., Any])

#: `token_budget(arguments, app)`: the most LLM tokens a call with these (validated) arguments may use,
#: so a per-request ceiling can refuse it before it starts.
TokenBudget = Callable[[Mapping[str, Any], web.Application], int]


class StreamCallback(Protocol):
    """`await _stream_callback("chunk", {...})`: send a `progress`, `chunk` or `message` event."""

    def __call__(self, event_type: str, data: Mapping[str, Any]) -> Awaitable[None]: ...


class ToolError(RhetorError):
    """An error a tool raises on purpose: its message and code reach the client as they are, and so
    do its `details` (extra fields of the `error` event or JSON error, such as the partial answer of
    a model stream that was cut short)."""

    def __init__(self, message: str, *, code: str = "tool_error", details: Mapping[str, Any] | None = None) -> None:
        super().__init__(message, code=code, details=details)


class DuplicateToolError(ValueError):
    """Two tools want the same name: which one a client would get would be an accident of import order."""


class ArgumentError(ToolError):
    """The arguments do not fit the tool's schema; names the argument and the problem."""

    status = 400

    def __init__(self, argument: str | None, problem: str, *, code: str = "invalid_arguments") -> None:
        prefix = f"argument '{argument}': " if argument else ""
        super().__init__(prefix + problem, code=code, details={"argument": argument})
        self.argument = argument


@attrs.frozen
class Bounds:
    """Inclusive bounds for an `Annotated` parameter: on a number its value, on a list its number
    of items. They show up in the schema too."""

    ge: float | None = None
    le: float | None = None


@attrs.frozen
class Alias:
    """Another name of an optional parameter, accepted in calls and shown in the schema as a
    deprecated property: clients written against an older API keep working unmodified. Giving both
    names in one call is refused (which one should win would be a guess)."""

    name: str


@attrs.frozen
class Known:
    """A string (or each string of a list) that must name something the server knows, such as a
    specialist: checked against `names(app)` before the call starts, so a typo is a 400, not a
    stream that fails."""

    what: str
    names: Callable[[web.Application], Collection[str]] = attrs.field(repr=False)

    def check(self, argument: str, value: Any, app: web.Application) -> None:
        if value is None:
            return
        known = self.names(app)
        for name in value if isinstance(value, list) else [value]:
            if name not in known:
                raise ArgumentError(argument, f"no {self.what} {preview(name)}; known: {', '.join(known)}",
                                    code=f"unknown_{self.what}")


@attrs.define(kw_only=True)
class ToolContext:
    """What a running tool may know about its run, injected as `_context` when the tool asks for it.

    `app` is the serving application: a tool reaches the services it needs through their typed
    `web.AppKey`s (`context.app[SPECIALISTS]` is a SpecialistService to mypy as well).
    """

    run_id: str
    tool_name: str
    chunk_size: str = "sentence"
    app: web.Application
    report: Callable[[float | None, str], Awaitable[None]] | None = attrs.field(default=None, repr=False)

    async def report_progress(self, percentage: float | None, message: str = "") -> None:
        """Report real progress (0-100, or None when unknown); the server throttles and frames it."""
        if self.report is not None:
            await self.report(percentage, message)


@attrs.frozen
class _Parameter:
    annotation: Any
    required: bool
    bounds: Bounds | None
    known: Known | None = None


@attrs.frozen(kw_only=True)
class Tool:
    """A registered tool: its function plus the schema its arguments are checked against."""

    name: str
    description: str
    function: Callable[..., Any] = attrs.field(repr=False)
    input_schema: dict[str, Any] = attrs.field(repr=False)
    tags: tuple[str, ...] = ()
    _parameters: Mapping[str, _Parameter] = attrs.field(repr=False, alias="parameters")
    _injected: frozenset[str] = attrs.field(repr=False, alias="injected")
    _aliases: Mapping[str, str] = attrs.field(repr=False, alias="aliases", factory=dict)  # alias -> name
    token_budget: TokenBudget | None = attrs.field(default=None, repr=False)

    @property
    def streaming(self) -> bool:
        """True when the tool sends its own events through `_stream_callback`."""
        return bool(getattr(self.function, _STREAMING_MARK, False))

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "tags": list(self.tags),
                "streaming": self.streaming, "input_schema": self.input_schema}

    def validate(self, arguments: Any, *, app: web.Application | None = None) -> dict[str, Any]:
        """Check arguments against the signature (and, given the app, `Known` names); return them
        with defaults left to Python."""
        if arguments is None:
            arguments = {}
        if not isinstance(arguments, dict):
            raise ArgumentError(None, f"'arguments' must be a JSON object, got {_json_type(arguments)}")
        unknown = sorted(set(arguments) - set(self._parameters) - set(self._aliases))
        if unknown:
            known = ", ".join(self._parameters) or "none"
            raise ArgumentError(unknown[0], f"unknown argument for {self.name} (it takes: {known})")
        checked: dict[str, Any] = dict(arguments)
        spelled: dict[str, str] = {}  # errors name the argument as the client spelled it
        for alias, name in self._aliases.items():
            if alias in checked:
                if name in checked:
                    raise ArgumentError(alias, f"'{alias}' is another name for '{name}'; give only one of them")
                checked[name] = checked.pop(alias)
                spelled[name] = alias
        for name, parameter in self._parameters.items():
            if name in checked:
                given_as = spelled.get(name, name)
                _check(given_as, checked[name], parameter.annotation)
                if parameter.bounds is not None:
                    _check_bounds(given_as, checked[name], parameter.bounds)
                if parameter.known is not None and app is not None:
                    parameter.known.check(given_as, checked[name], app)
            elif parameter.required:
                raise ArgumentError(name, f"missing required argument of {self.name}")
        return checked

    @property
    def wants_context(self) -> bool:
        return CONTEXT in self._injected

    def invoke(self, arguments: Mapping[str, Any], *, context: ToolContext | None,
               stream_callback: StreamCallback | None = None) -> Awaitable[Any]:
        """Run the tool with validated arguments; a sync function runs in the default executor.

        It returns the tool's own awaitable rather than awaiting it: one coroutine frame less for
        every open stream.
        """
        kwargs = dict(arguments)
        if STREAM_CALLBACK in self._injected:
            kwargs[STREAM_CALLBACK] = stream_callback
        if CONTEXT in self._injected:
            kwargs[CONTEXT] = context
        if inspect.iscoroutinefunction(self.function):
            awaitable: Awaitable[Any] = self.function(**kwargs)
            return awaitable
        loop = asyncio.get_running_loop()
        return loop.run_in_executor(None, functools.partial(self.function, **kwargs))


class ToolRegistry:
    """Tools by name: the ones an app serves. Two names for one tool are refused, whatever the order
    they are added in; adding the same tool again is a no-op (a module scanned twice)."""

    def __init__(self) -> None:
        self._tools: dict[str, Tool] = {}

    def register(self, tool: Tool) -> Tool:
        existing = self._tools.get(tool.name)
        if existing is not None and existing.function is not tool.function:
            raise DuplicateToolError(f"a tool named {tool.name!r} is already registered "
                                     f"(by {existing.function.__module__})")
        self._tools[tool.name] = tool
        return tool

    def add(self, *functions: Callable[..., Any]) -> None:
        """Register the tools `@mcp_tool` declared on each function."""
        for function in functions:
            declared = tools_of(function)
            if not declared:
                raise TypeError(f"{function!r} is not a tool (decorate it with @mcp_tool)")
            for tool in declared:
                self.register(tool)

    def add_module(self, module: types.ModuleType) -> int:
        """Register every tool declared on a function of the module's namespace (its own and those
        it imports); return how many there are."""
        declared = {id(tool): tool for value in list(vars(module).values()) for tool in tools_of(value)}
        for tool in declared.values():
            self.register(tool)
        return len(declared)

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)

    def __iter__(self) -> Iterator[Tool]:
        return iter(sorted(self._tools.values(), key=lambda tool: tool.name))

def streaming_tool(function: F) -> F:
    """Mark a tool that sends its own events; it must accept `_stream_callback`."""
    if STREAM_CALLBACK not in inspect.signature(function).parameters:
        raise TypeError(f"streaming tool {function.__qualname__} must take a {STREAM_CALLBACK} parameter")
    setattr(function, _STREAMING_MARK, True)
    return function


def mcp_tool(*, name: str | None = None, description: str | None = None, tags: tuple[str, ...] = (),
             token_budget: TokenBudget | None = None) -> Callable[[F], F]:
    """Declare a function a tool (it is returned unchanged, marked with its Tool): a registry adds it
    with `add(function)` or `add_module(module)`. Stacked, it gives one function several names. A tool
    that calls LLMs says how many tokens a call may use with `token_budget`."""

    def decorate(function: F) -> F:
        tool = build_tool(function, name=name, description=description, tags=tags, token_budget=token_budget)
        setattr(function, _TOOLS_MARK, (*tools_of(function), tool))
        return function

    return decorate


def tools_of(value: object) -> tuple[Tool, ...]:
    """The tools `@mcp_tool` declared on `value`: none for anything else a module may hold (read from
    its own `__dict__`, so an object answering every attribute, such as a mock, declares nothing)."""
    declared = getattr(value, "__dict__", {}).get(_TOOLS_MARK, ())
    return declared if isinstance(declared, tuple) else ()


def build_tool(function: Callable[..., Any], *, name: str | None = None, description: str | None = None,
               tags: tuple[str, ...] = (), token_budget: TokenBudget | None = None) -> Tool:
    """Describe `function` as a Tool: schema and validation rules from its signature."""
    hints = typing.get_type_hints(function, include_extras=True)
    parameters: dict[str, _Parameter] = {}
    injected: set[str] = set()
    properties: dict[str, Any] = {}
    required: list[str] = []
    aliases: dict[str, str] = {}
    for parameter in inspect.signature(function).parameters.values():
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            raise TypeError(f"tool {function.__qualname__}: *args/**kwargs cannot be described by a schema")
        if parameter.name.startswith("_"):
            injected.add(parameter.name)
            continue
        annotation = hints.get(parameter.name, Any)
        bounds = known = None
        extras: list[Any] = []
        if get_origin(annotation) is typing.Annotated:
            annotation, *extras = get_args(annotation)
            bounds = next((extra for extra in extras if isinstance(extra, Bounds)), None)
            known = next((extra for extra in extras if isinstance(extra, Known)), None)
        is_required = parameter.default is parameter.empty
        other_names = [extra.name for extra in extras if isinstance(extra, Alias)]
        if other_names and is_required:
            raise TypeError(f"tool {function.__qualname__}: an Alias needs an optional parameter "
                            f"({parameter.name!r} is required)")
        parameters[parameter.name] = _Parameter(annotation, is_required, bounds, known)
        schema = _schema(annotation)
        if bounds is not None:
            low, high = ("minItems", "maxItems") if _takes_list(annotation) else ("minimum", "maximum")
            schema.update({key: value for key, value in ((low, bounds.ge), (high, bounds.le))
                           if value is not None})
        alias_schema = {**schema, "deprecated": True, "description": f"Deprecated: another name for "
                        f"'{parameter.name}'"}
        if is_required:
            required.append(parameter.name)
        else:
            schema["default"] = parameter.default
        properties[parameter.name] = schema
        for alias in other_names:
            aliases[alias] = parameter.name
            properties[alias] = alias_schema
    input_schema = {"type": "object", "properties": properties, "required": required,
                    "additionalProperties": False}
    doc = inspect.getdoc(function) or ""
    return Tool(name=name or function.__name__, description=description or doc.split("\n\n")[0],
                function=function, input_schema=input_schema, tags=tuple(tags),
                parameters=parameters, injected=frozenset(injected), aliases=aliases, token_budget=token_budget)


_JSON_TYPES: dict[Any, str] = {str: "string", int: "integer", float: "number", bool: "boolean",
                               dict: "object", list: "array", type(None): "null"}


def _schema(annotation: Any) -> dict[str, Any]:
    """JSON Schema of a type hint (the subset tools use: scalars, lists, dicts, Optional, Literal)."""
    origin = get_origin(annotation)
    if annotation is Any:
        return {}
    if origin is Literal:
        return {"enum": list(get_args(annotation))}
    if origin in (Union, types.UnionType):
        options = [_schema(arg) for arg in get_args(annotation)]
        return {"anyOf": options}
    if origin in (list, tuple) or annotation in (list, tuple):
        args = get_args(annotation)
        return {"type": "array", "items": _schema(args[0])} if args else {"type": "array"}
    if origin is dict or annotation is dict:
        return {"type": "object"}
    if annotation in _JSON_TYPES:
        return {"type": _JSON_TYPES[annotation]}
    raise TypeError(f"tool parameter type {annotation!r} has no JSON Schema mapping")


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null" if value is None else type(value).__name__


def _matches(value: Any, annotation: Any) -> bool:
    origin = get_origin(annotation)
    if annotation is Any:
        return True
    if origin is Literal:
        return value in get_args(annotation)
    if origin in (Union, types.UnionType):
        return any(_matches(value, arg) for arg in get_args(annotation))
    if origin in (list, tuple) or annotation in (list, tuple):
        args = get_args(annotation)
        return isinstance(value, list) and (not args or all(_matches(item, args[0]) for item in value))
    if origin is dict or annotation is dict:
        return isinstance(value, dict)
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is type(None):
        return value is None
    return isinstance(value, annotation)


def _check(name: str, value: Any, annotation: Any) -> None:
    if not _matches(value, annotation):
        expected = _describe_type(annotation)
        raise ArgumentError(name, f"expected {expected}, got {_json_type(value)} ({preview(value)})")


def _check_bounds(name: str, value: Any, bounds: Bounds) -> None:
    if isinstance(value, list):
        if bounds.ge is not None and len(value) < bounds.ge:
            raise ArgumentError(name, f"needs at least {bounds.ge:g} item(s), got {len(value)}")
        if bounds.le is not None and len(value) > bounds.le:
            raise ArgumentError(name, f"takes at most {bounds.le:g} item(s), got {len(value)}")
        return
    if not isinstance(value, (int, float)):
        return
    if bounds.ge is not None and value < bounds.ge:
        raise ArgumentError(name, f"must be at least {bounds.ge:g}, got {preview(value)}")
    if bounds.le is not None and value > bounds.le:
        raise ArgumentError(name, f"must be at most {bounds.le:g}, got {preview(value)}")


def _takes_list(annotation: Any) -> bool:
    """A list, or an Optional/Union with a list in it: Bounds then count its items."""
    if annotation is list or get_origin(annotation) is list:
        return True
    return get_origin(annotation) in (Union, types.UnionType) and any(map(_takes_list, get_args(annotation)))


def _describe_type(annotation: Any) -> str:
    origin = get_origin(annotation)
    if origin is Literal:
        return "one of " + ", ".join(repr(arg) for arg in get_args(annotation))
    if origin in (Union, types.UnionType):
        return " or ".join(_describe_type(arg) for arg in get_args(annotation))
    schema_type = _schema(annotation).get("type")
    return {"string": "a string", "integer": "an integer", "number": "a number",
            "boolean": "a boolean", "object": "an object", "array": "an array",
            "null": "null"}.get(str(schema_type), str(annotation))


def _previewer() -> reprlib.Repr:
    shorten = reprlib.Repr()
    shorten.maxlevel, shorten.maxstring, shorten.maxlong, shorten.maxother = 3, 40, 40, 40
    shorten.maxlist = shorten.maxdict = 4
    return shorten


_PREVIEW = _previewer()


def preview(value: Any) -> str:
    """A value from a request as an error message shows it: short however big the value is, and
    safe however deep (plain `repr` recurses through every level, past Python's limit at ~1,000)."""
    return _PREVIEW.repr(value)
