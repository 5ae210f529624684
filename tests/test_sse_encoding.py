"""Byte-exact SSE framing: what goes on the wire for each kind of event."""
from __future__ import annotations

from typing import Any

import pytest

from rhetor_stream.sse.encoding import HEARTBEAT, encode_comment, encode_event, encode_json_event


@pytest.mark.parametrize("kwargs, expected", [
    ({"data": "hello"}, b"data: hello\n\n"),
    ({"data": ""}, b"data: \n\n"),
    ({"data": None, "id": "7"}, b"id: 7\n\n"),
    ({"data": "a\nb"}, b"data: a\ndata: b\n\n"),
    ({"data": "a\rb"}, b"data: a\ndata: b\n\n"),
    ({"data": "a\r\nb"}, b"data: a\ndata: b\n\n"),
    ({"data": "a\n"}, b"data: a\ndata: \n\n"),
    ({"data": "\n\n"}, b"data: \ndata: \ndata: \n\n"),
    ({"data": " leading space"}, b"data:  leading space\n\n"),
    ({"data": "x", "event": "chunk"}, b"event: chunk\ndata: x\n\n"),
    ({"data": "x", "event": ""}, b"data: x\n\n"),
    ({"data": "x", "id": 3, "event": "e", "retry": 1500}, b"id: 3\nevent: e\nretry: 1500\ndata: x\n\n"),
    ({"data": "x", "id": ""}, b"id: \ndata: x\n\n"),
    ({"data": "x", "retry": 0}, b"retry: 0\ndata: x\n\n"),
    ({"data": "zürich ✓ 日本"}, "data: zürich ✓ 日本\n\n".encode()),
    ({"data": "u\u2028v\x0bw\x1cx"}, "data: u\u2028v\x0bw\x1cx\n\n".encode()),  # not line breaks in SSE
])
def test_encode_event_table(kwargs: dict[str, Any], expected: bytes) -> None:
    assert encode_event(**kwargs) == expected


@pytest.mark.parametrize("args, kwargs, expected", [
    (("chunk", {"content": {"content": "a\nb"}}), {"id": 2},
     b'id: 2\nevent: chunk\ndata: {"content":{"content":"a\\nb"}}\n\n'),
    (("connected", {"x": 1}), {"id": "run-1", "retry": 3000},
     b'id: run-1\nevent: connected\nretry: 3000\ndata: {"x":1}\n\n'),
    (("message", [1, "\r"]), {}, b'event: message\ndata: [1,"\\r"]\n\n'),
    (("complete", None), {"id": 9}, b"id: 9\nevent: complete\ndata: null\n\n"),
])
def test_encode_json_event_table(args: tuple[str, Any], kwargs: dict[str, Any], expected: bytes) -> None:
    assert encode_json_event(*args, **kwargs) == expected


def test_comments() -> None:
    assert HEARTBEAT == b": ping\n\n"
    assert encode_comment() == b": \n\n"
    assert encode_comment("a\r\nb") == b": a\n: b\n\n"


def test_no_bom() -> None:
    assert not encode_event("x").startswith(b"\xef\xbb\xbf")


@pytest.mark.parametrize("kwargs, error, mentions", [
    ({"event": "a\nb"}, ValueError, "'event'"),
    ({"event": "a\rb"}, ValueError, "'event'"),
    ({"id": "1\n2"}, ValueError, "'id'"),
    ({"id": "1\x002"}, ValueError, "NUL"),
    ({"retry": True}, TypeError, "'retry'"),
    ({"retry": 1.5}, TypeError, "'retry'"),
    ({"retry": -1}, ValueError, "negative"),
])
def test_refused_fields(kwargs: dict[str, Any], error: type[Exception], mentions: str) -> None:
    with pytest.raises(error, match=mentions):
        encode_event("x", **kwargs)
    with pytest.raises(error, match=mentions):
        encode_json_event(kwargs.pop("event", "e"), {}, **kwargs)
