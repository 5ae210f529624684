"""JSON-RPC 2.0 and the MCP methods that need no run: parsing, errors, initialize, tools/list.

Transport-free on purpose: the HTTP transport (`mcp.http`) decides how a message travels, this module
decides what it says. Protocol revisions served are the ones with the `initialize` handshake, sessions
and resumable streams (2025-03-26 to 2025-11-25). The 2026-07-28 revision dropped sessions and
`Last-Event-ID`, which are what our resumable runs are for: a request in that version (its
`server/discover` probe) is refused with that revision's own "unsupported protocol version" error,
which lists the versions served, and clients then fall back to `initialize`.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypeGuard

import attrs
import orjson

from rhetor_stream import __version__
from rhetor_stream.errors import RhetorError
from rhetor_stream.tools.registry import ArgumentError, Tool, ToolRegistry

JSONRPC = "2.0"
#: Newest first: `initialize` answers with the client's version when it is here, else the first.
VERSIONS = ("2025-11-25", "2025-06-18", "2025-03-26")
#: The only revision whose transport accepts JSON-RPC batches (2025-06-18 removed them).
BATCH_VERSIONS = frozenset({"2025-03-26"})
LOG_LEVELS = ("debug", "info", "notice", "warning", "error", "critical", "alert", "emergency")

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
UNSUPPORTED_VERSION = -32022  # defined by 2026-07-28; older clients read it as any 400

#: Ids and progress tokens travel inside every SSE event id of their stream (so any process can resume
#: it); a client that sends a megabyte-long id would make every frame a megabyte.
MAX_ID_CHARS = 200

RequestId = str | int


class RpcError(Exception):
    """A JSON-RPC error answering `id` (None when the message was unreadable)."""

    def __init__(self, code: int, message: str, id: RequestId | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.id = id

    def response(self) -> dict[str, Any]:
        return error(self.id, self.code, self.message)


@attrs.frozen
class Message:
    """One JSON-RPC message from the client: a request (`id` set), a notification, or a response."""

    method: str | None
    id: RequestId | None
    params: dict[str, Any]

    @property
    def is_request(self) -> bool:
        return self.method is not None and self.id is not None


def parse(raw: Any) -> Message:
    """Check one JSON-RPC message; RpcError(INVALID_REQUEST) names what is wrong with it."""
    if not isinstance(raw, dict):
        raise RpcError(INVALID_REQUEST, "a JSON-RPC message must be a JSON object")
    id = raw.get("id")
    if id is not None and not valid_id(id):
        raise RpcError(INVALID_REQUEST, "'id' must be a string or an integer of at most "
                       f"{MAX_ID_CHARS} characters")
    if raw.get("jsonrpc") != JSONRPC:
        raise RpcError(INVALID_REQUEST, "'jsonrpc' must be \"2.0\"", id)
    method = raw.get("method")
    if method is None:
        if "id" in raw and ("result" in raw or "error" in raw):
            return Message(None, id, {})  # a response to a request of ours (we send none)
        raise RpcError(INVALID_REQUEST, "a JSON-RPC message needs a 'method' (or is a response)", id)
    if not isinstance(method, str) or not method:
        raise RpcError(INVALID_REQUEST, "'method' must be a non-empty string", id)
    params = raw.get("params", {})
    if not isinstance(params, dict):
        raise RpcError(INVALID_PARAMS, f"the params of {method} must be a JSON object", id)
    if "id" in raw and id is None:
        raise RpcError(INVALID_REQUEST, "an MCP request id must not be null")
    return Message(method, id, params)


def valid_id(value: Any) -> TypeGuard[RequestId]:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return len(str(value)) <= MAX_ID_CHARS
    return isinstance(value, str) and len(value) <= MAX_ID_CHARS


def result(id: RequestId | None, value: Mapping[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": JSONRPC, "id": id, "result": value}


def error(id: RequestId | None, code: int, message: str, data: Any = None) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        body["data"] = data
    return {"jsonrpc": JSONRPC, "id": id, "error": body}


def notification(method: str, params: Mapping[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": JSONRPC, "method": method, "params": params}


def initialize(message: Message) -> tuple[dict[str, Any], str]:
    """The `initialize` result and the protocol version it settles on."""
    requested = message.params.get("protocolVersion")
    if not isinstance(requested, str) or not requested:
        raise RpcError(INVALID_PARAMS, "initialize needs params.protocolVersion (a string)", message.id)
    version = requested if requested in VERSIONS else VERSIONS[0]
    return {
        "protocolVersion": version,
        "capabilities": {"tools": {"listChanged": False}, "logging": {}},
        "serverInfo": {"name": "rhetor_stream", "version": __version__},
        "instructions": "Tools of a rhetor_stream server. Streaming tools report their text as progress "
                        "notifications when the call carries a progressToken.",
    }, version


def list_tools(tools: Iterable[Tool]) -> dict[str, Any]:
    """The same names, descriptions and input schemas as GET /api/mcp/v2/tools."""
    return {"tools": [{"name": tool.name, "description": tool.description, "inputSchema": tool.input_schema}
                      for tool in tools]}


def answer(message: Message, tools: Iterable[Tool]) -> dict[str, Any]:
    """The response to a request that needs no run, whichever transport it came by."""
    try:
        if message.method == "ping":
            return result(message.id, {})
        if message.method == "tools/list":
            return result(message.id, list_tools(tools))
        if message.method == "logging/setLevel":
            return result(message.id, set_level(message))
        raise RpcError(METHOD_NOT_FOUND, f"method {message.method!r} is not served here "
                       "(initialize, ping, tools/list, tools/call, logging/setLevel)", message.id)
    except RpcError as exc:
        return exc.response()


@attrs.frozen
class ToolCall:
    """A checked tools/call: what to run, with what, and how to tag its progress."""

    tool: Tool
    arguments: dict[str, Any]
    progress_token: RequestId | None


def check_call(message: Message, tools: ToolRegistry, app: Any) -> ToolCall | dict[str, Any]:
    """The call to run, or the response that refuses it: a JSON-RPC error for a call that names no
    known tool, an `isError` result for bad arguments (the model can read and fix those)."""
    params = message.params
    name = params.get("name")
    if not isinstance(name, str) or not name:
        return error(message.id, INVALID_PARAMS, "tools/call needs params.name (a string)")
    tool = tools.get(name)
    if tool is None:
        return error(message.id, INVALID_PARAMS, f"unknown tool {name!r}; tools/list lists them")
    meta = params.get("_meta")
    token = meta.get("progressToken") if isinstance(meta, dict) else None
    if token is not None and not valid_id(token):
        return error(message.id, INVALID_PARAMS, "params._meta.progressToken must be a string or an "
                     f"integer of at most {MAX_ID_CHARS} characters")
    try:
        arguments = tool.validate(params.get("arguments"), app=app)
    except ArgumentError as exc:
        return refused(message.id, exc)
    return ToolCall(tool, arguments, token)


def refused(id: RequestId | None, exc: RhetorError) -> dict[str, Any]:
    """A call refused before it runs (bad arguments, a token budget it would exceed): a result with
    `isError`, like a failed call, so the model can read why and fix it."""
    return result(id, tool_error(exc.public_message, exc.code, **exc.details))


def server_error(id: RequestId | None, exc: RhetorError) -> dict[str, Any]:
    """A request the server cannot serve now (its event store is away): a JSON-RPC error whose
    `data` carries our code, so a client can tell a store that is away from one that refuses us."""
    return error(id, INTERNAL_ERROR, exc.public_message, {"code": exc.code})


def set_level(message: Message) -> dict[str, Any]:
    """`logging/setLevel`: checked and accepted. The server sends no log notifications yet (tool
    output goes out as progress), so there is nothing to filter."""
    level = message.params.get("level")
    if level not in LOG_LEVELS:
        raise RpcError(INVALID_PARAMS, f"params.level must be one of {', '.join(LOG_LEVELS)}, got {level!r}",
                       message.id)
    return {}


def tool_result(value: Any) -> dict[str, Any]:
    """A tool's return value as a CallToolResult: text for every client, the object itself as
    `structuredContent` for clients that read it."""
    text = value if isinstance(value, str) else orjson.dumps(value).decode()
    body: dict[str, Any] = {"content": [{"type": "text", "text": text}], "isError": False}
    if isinstance(value, dict):
        body["structuredContent"] = value
    return body


def tool_error(message: str, code: str, **context: Any) -> dict[str, Any]:
    """A failed call as the spec wants it: a result with `isError`, so the model can read why."""
    return {"content": [{"type": "text", "text": message}], "isError": True,
            "structuredContent": {"error": message, "code": code, **context}}
