"""Turning a request body into a checked tool call, before any byte of a stream is sent."""
from __future__ import annotations

import asyncio
from typing import Any

import attrs
import orjson
from aiohttp import hdrs, web

from rhetor_stream.stream.options import StreamOptions
from rhetor_stream.tools.registry import ArgumentError, Tool, ToolRegistry
from rhetor_stream.web.errors import ApiError, malformed_request
from rhetor_stream.web.guard import check_token_budget
from rhetor_stream.web.state import STATE

# No tool takes arguments nested anywhere near this deep; past it, validating and describing a value
# (`repr` in an error message) would recurse towards Python's own limit. orjson refuses 1,024 levels.
MAX_JSON_DEPTH = 64


@attrs.frozen
class ToolCall:
    tool: Tool
    arguments: dict[str, Any]
    options: StreamOptions


async def read_json_object(request: web.Request) -> dict[str, Any]:
    """The body as a JSON object, or an ApiError with the status that names the problem."""
    # From the header, not `request.content_type`, which caches its parts on the request (see _read_body).
    media_type = request.headers.get(hdrs.CONTENT_TYPE, "application/octet-stream").partition(";")[0].strip()
    if media_type.lower() != "application/json":
        raise ApiError(415, "unsupported_media_type",
                       f"send the body as JSON with 'Content-Type: application/json' (got {media_type!r})")
    settings = request.app[STATE].settings
    try:
        if request.content.is_eof():
            # No timer when the whole body is already here (a small body comes with its headers):
            # nothing will wait, and a cancelled timer would stay in the event loop for
            # --body-timeout seconds (and the timeout's context costs time before the first event).
            raw = await _read_body(request, settings.max_body_bytes)
        else:
            async with asyncio.timeout(settings.body_timeout):
                raw = await _read_body(request, settings.max_body_bytes)
    except TimeoutError:
        # A body sent a few bytes at a time would hold its connection (and slot) for ever; a client
        # too slow to send its request does not get to send another on it.
        raise ApiError(408, "body_timeout", f"the request body did not arrive within "
                       f"{settings.body_timeout:g} s", close=True) from None
    except web.RequestPayloadError as exc:  # its Content-Encoding or chunked framing is broken
        raise ApiError(400, "malformed_body", f"request body cannot be read: {malformed_request(exc)}") from None
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, "malformed_json", f"request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ApiError(400, "malformed_request", "request body must be a JSON object")
    # Nesting deeper than the limit needs more opening brackets than the limit: a body with fewer
    # (nearly all) is not walked. (Brackets inside strings only make the count larger.)
    if raw.count(b"[") + raw.count(b"{") > MAX_JSON_DEPTH and _deeper_than(body, MAX_JSON_DEPTH):
        raise ApiError(400, "json_too_deep", f"request body nests arrays and objects deeper than "
                       f"the depth limit of {MAX_JSON_DEPTH} levels")
    return body


async def _read_body(request: web.Request, limit: int) -> bytearray:
    """The body, refused past `limit` bytes. Not `request.read()`: that keeps the body on the request,
    whose attribute dict then grows by most of a kilobyte for as long as the stream stays open."""
    content = request.content
    body = bytearray()
    while not content.at_eof():  # (not `while chunk := readany()`: one read less when it is all here)
        body += await content.readany()
        if len(body) > limit:
            raise ApiError(413, "body_too_large", f"request body is larger than the limit of {limit} bytes")
    return body


def _deeper_than(value: Any, limit: int) -> bool:
    """True when arrays and objects nest more than `limit` levels; level by level, not recursive,
    so the check itself is safe at any depth and linear in the size of the value."""
    level = [value]
    for _ in range(limit):
        level = [child for item in level if isinstance(item, (dict, list))
                 for child in (item.values() if isinstance(item, dict) else item)]
        if not level:
            return False
    return any(isinstance(item, (dict, list)) for item in level)


async def read_tool_call(request: web.Request, tools: ToolRegistry) -> ToolCall:
    body = await read_json_object(request)
    unknown = sorted(set(body) - {"tool_name", "arguments", "stream_options"})
    if unknown:
        raise ApiError(400, "malformed_request", f"unknown field {unknown[0]!r} in the request body "
                       "(expected tool_name, arguments, stream_options)", field=unknown[0])
    name = body.get("tool_name")
    if not isinstance(name, str) or not name:
        raise ApiError(400, "missing_tool_name", "the request body needs a 'tool_name' string")
    tool = tools.get(name)
    if tool is None:
        raise ApiError(404, "unknown_tool", f"no tool named {name!r}; GET /api/mcp/v2/tools lists them",
                       tool_name=name)
    try:
        arguments = tool.validate(body.get("arguments"), app=request.app)
        options = StreamOptions.parse(body.get("stream_options"))
    except ArgumentError as exc:
        raise ApiError(400, exc.code, exc.message, argument=exc.argument, tool_name=name) from None
    check_token_budget(request, tool, arguments)
    return ToolCall(tool, arguments, options)
