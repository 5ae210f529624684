"""The tool registry: schemas derived from signatures, and validation that names the problem."""
from __future__ import annotations

import types
from typing import Annotated, Literal

import pytest

from rhetor_stream.tools import (
    Alias,
    ArgumentError,
    Bounds,
    Known,
    StreamCallback,
    ToolRegistry,
    mcp_tool,
    streaming_tool,
)


@mcp_tool(name="Shape", description="Exercises every supported type.", tags=("test",))
async def shape(text: str, count: Annotated[int, Bounds(ge=1, le=10)] = 1, ratio: float = 0.5,
                flag: bool = False, items: list[str] | None = None,
                mode: Literal["a", "b"] = "a", extra: dict | None = None) -> None:  # type: ignore[type-arg]
    """Ignored: the description argument wins."""


@mcp_tool()
@streaming_tool
async def Streamer(_stream_callback: StreamCallback) -> None:
    """First paragraph is the description.

    Not this one."""


tools = ToolRegistry()
tools.add(shape, Streamer)


def test_schema_from_signature() -> None:
    tool = tools.get("Shape")
    assert tool is not None and tool.streaming is False and tool.tags == ("test",)
    schema = tool.input_schema
    assert schema["required"] == ["text"] and schema["additionalProperties"] is False
    properties = schema["properties"]
    assert properties["text"] == {"type": "string"}
    assert properties["count"] == {"type": "integer", "minimum": 1, "maximum": 10, "default": 1}
    assert properties["ratio"] == {"type": "number", "default": 0.5}
    assert properties["flag"] == {"type": "boolean", "default": False}
    assert properties["items"] == {"anyOf": [{"type": "array", "items": {"type": "string"}},
                                             {"type": "null"}], "default": None}
    assert properties["mode"] == {"enum": ["a", "b"], "default": "a"}


def test_streaming_tool_and_docstring_description() -> None:
    tool = tools.get("Streamer")
    assert tool is not None and tool.streaming and tool.description == "First paragraph is the description."
    assert tool.input_schema["properties"] == {}


@pytest.mark.parametrize("arguments, argument, problem", [
    ({}, "text", "missing required argument"),
    ({"text": None}, "text", "expected a string, got null"),
    ({"text": "a", "count": 1.5}, "count", "expected an integer, got number"),
    ({"text": "a", "count": 11}, "count", "must be at most 10"),
    ({"text": "a", "ratio": "1"}, "ratio", "expected a number, got string"),
    ({"text": "a", "flag": 1}, "flag", "expected a boolean, got integer"),
    ({"text": "a", "items": ["x", 2]}, "items", "expected an array or null"),
    ({"text": "a", "mode": "c"}, "mode", "expected one of 'a', 'b'"),
    ({"text": "a", "color": "red"}, "color", "unknown argument for Shape"),
])
def test_validation_names_argument_and_problem(arguments: dict[str, object], argument: str, problem: str) -> None:
    tool = tools.get("Shape")
    assert tool is not None
    with pytest.raises(ArgumentError) as caught:
        tool.validate(arguments)
    assert caught.value.argument == argument and problem in caught.value.message


def test_valid_arguments_pass() -> None:
    tool = tools.get("Shape")
    assert tool is not None
    arguments = {"text": "a", "count": 3, "ratio": 1, "flag": True, "items": ["x"], "mode": "b", "extra": {}}
    assert tool.validate(arguments) == arguments


def test_duplicate_names_and_bad_declarations_are_refused() -> None:
    @mcp_tool(name="Shape")
    async def other(text: str) -> None: ...

    with pytest.raises(ValueError, match="already registered"):
        tools.add(other)
    with pytest.raises(TypeError, match="must take a _stream_callback"):
        streaming_tool(lambda: None)
    with pytest.raises(TypeError, match="no JSON Schema mapping"):
        @mcp_tool()
        async def bad(when: complex) -> None: ...


@mcp_tool(name="Greet")
async def greet(who: Annotated[str, Known("person", lambda app: app["people"])],
                crowd: Annotated[list[str] | None, Known("person", lambda app: app["people"])] = None) -> None:
    """Names checked against what the app knows."""


tools.add(greet)


@pytest.mark.parametrize("arguments, argument", [
    ({"who": "eve"}, "who"),
    ({"who": "ann", "crowd": ["bob", "eve"]}, "crowd"),
])
def test_known_names_are_checked_against_the_app(arguments: dict[str, object], argument: str) -> None:
    tool = tools.get("Greet")
    assert tool is not None
    app = {"people": ["ann", "bob"]}
    with pytest.raises(ArgumentError) as caught:
        tool.validate(arguments, app=app)
    assert caught.value.argument == argument and caught.value.code == "unknown_person"
    assert "'eve'" in caught.value.message and "ann, bob" in caught.value.message
    assert tool.validate(arguments) == arguments  # without an app (no server) only types are checked
    assert tool.validate({"who": "ann", "crowd": None}, app=app) == {"who": "ann", "crowd": None}


@mcp_tool(name="Pick")
async def pick(choices: Annotated[list[str] | None, Bounds(ge=1, le=2)] = None) -> None:
    """Bounds on a list count its items."""


tools.add(pick)


def test_bounds_on_a_list_count_its_items() -> None:
    tool = tools.get("Pick")
    assert tool is not None
    schema = tool.input_schema["properties"]["choices"]
    assert schema["minItems"] == 1 and schema["maxItems"] == 2 and "minimum" not in schema
    for arguments, problem in (({"choices": []}, "at least 1"), ({"choices": ["a", "b", "c"]}, "at most 2")):
        with pytest.raises(ArgumentError) as caught:
            tool.validate(arguments)
        assert caught.value.argument == "choices" and problem in caught.value.message
    assert tool.validate({"choices": ["a"]}) == {"choices": ["a"]}
    assert tool.validate({"choices": None}) == {"choices": None}


def test_an_alias_needs_an_optional_parameter() -> None:
    async def tool(name: Annotated[str, Alias("old_name")]) -> str:
        return name

    with pytest.raises(TypeError, match="'name' is required"):
        mcp_tool()(tool)


def test_a_module_is_scanned_into_each_registry_on_its_own() -> None:
    """`@mcp_tool` registers nothing: a registry takes the tools a module holds, as often as asked,
    and one registry's tools are not another's."""
    module = types.ModuleType("scanned")
    module.shape, module.pick, module.Bounds, module.limit = shape, pick, Bounds, 3  # type: ignore[attr-defined]
    first, second = ToolRegistry(), ToolRegistry()
    assert first.add_module(module) == 2 and first.add_module(module) == 2
    second.add(greet)
    assert [tool.name for tool in first] == ["Pick", "Shape"] and [tool.name for tool in second] == ["Greet"]
    with pytest.raises(TypeError, match="not a tool"):
        second.add(Bounds)


def test_stacked_declarations_give_one_function_several_names() -> None:
    @mcp_tool(name="New")
    @mcp_tool(name="Old")
    async def both() -> None: ...

    names = ToolRegistry()
    names.add(both)
    assert [tool.name for tool in names] == ["New", "Old"]
