"""Regression: arguments or stream_options nested 990-1,020 deep were a 500 (issue 9, item 6).

orjson parses up to 1,024 levels, and the error message for a value of the wrong type was built
with `repr()`, which recursed past Python's limit: a RecursionError and a 500. (Deeper than orjson
parses was already a clean 400.) Now the body's nesting is checked, without recursion, against
MAX_JSON_DEPTH and refused with a 400 that names the limit, at any depth; and the previews in error
messages are bounded, so `Tool.validate` and `StreamOptions.parse` are safe called directly too.
"""
from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient

from rhetor_stream.stream.options import StreamOptions
from rhetor_stream.tools.registry import ArgumentError
from rhetor_stream.web.app import served_tools
from rhetor_stream.web.requests import MAX_JSON_DEPTH


def _nested(depth: int) -> str:
    return "[" * depth + '"x"' + "]" * depth


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH, 500, 990, 1000, 1019, 1020, 1100, 5000])
@pytest.mark.parametrize("where", ["arguments", "stream_options"])
@pytest.mark.parametrize("endpoint", ["stream", "process", "runs"])
async def test_deep_nesting_is_a_400_that_names_the_limit(client: TestClient, depth: int, where: str,
                                                         endpoint: str) -> None:
    if where == "arguments":
        body = '{"tool_name": "Echo", "arguments": {"text": %s}}' % _nested(depth)
    else:
        body = ('{"tool_name": "Echo", "arguments": {"text": "a"}, "stream_options": {"chunk_size": %s}}'
                % _nested(depth))
    response = await client.post(f"/api/mcp/v2/{endpoint}", data=body, headers={"Content-Type": "application/json"})
    assert response.status == 400, await response.text()
    error = await response.json()
    assert "depth limit" in error["error"], error
    if depth <= 1020:  # what orjson parses (it refuses about 1,024 levels itself, as malformed JSON)
        assert error["code"] == "json_too_deep" and str(MAX_JSON_DEPTH) in error["error"], error


def test_error_previews_are_bounded_at_any_depth() -> None:
    value: object = "x"
    for _ in range(5000):
        value = [value]
    with pytest.raises(ArgumentError) as caught:
        served_tools().get("Echo").validate({"text": value})  # type: ignore[union-attr]
    assert "expected a string, got array" in caught.value.message and len(caught.value.message) < 200
    for options in ({"chunk_size": value}, {"resume_grace_s": value}):
        with pytest.raises(ArgumentError) as caught:
            StreamOptions.parse(options)
        assert len(caught.value.message) < 200
