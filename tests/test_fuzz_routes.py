"""A bounded fuzzer over every route, header, query parameter and body shape (issue 9, item 6).

Whatever a client sends, the server answers within a bound, never with a 5xx, with a JSON error body
on a 4xx from the API, and without an ERROR or a traceback in its log. The routes come from the
app's own router, and the tool arguments from each tool's own schema (values of the right type, and
of every wrong one), so a new route or tool is fuzzed without touching this file. Three servers:
the memory store, the memory store with an API key, the Redis store. Hypothesis runs with a fixed
seed and a bounded number of examples: the same requests on every run, under half a minute in all.

Raw-socket requests cover what aiohttp's client refuses to send (bad request lines, broken framing).
"""
from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, Phase, assume, event, given, seed, settings
from hypothesis import strategies as st
from yarl import URL

from rhetor_stream.settings import Settings
from rhetor_stream.web.app import create_app, served_tools
from tests.conftest import FAST

SEED = 20261127
ANSWER_WITHIN = 10.0  # seconds until the status line (a deadline, not a measurement: shared CI machine)
STREAM_READ = 0.2  # seconds of a 200 event stream read before the client hangs up
MAX_BODY = 64 * 1024  # a small body limit, so that the 413 path is cheap to reach
KEY = "fuzz-key-0123456789abcdef"
METHODS = ["GET", "POST", "DELETE", "PUT", "PATCH", "HEAD", "OPTIONS"]


def fuzz(examples: int) -> settings:
    return settings(max_examples=examples, deadline=None, database=None,
                    phases=[Phase.explicit, Phase.generate, Phase.shrink], suppress_health_check=list(HealthCheck))


class Target:
    """The server under test and the runs that exist in it."""

    def __init__(self, client: TestClient, finished: str, running: str, keyed: bool) -> None:
        self.client = client
        self.finished = finished
        self.running = running
        self.keyed = keyed

    @property
    def app(self) -> web.Application:
        return self.client.server.app  # type: ignore[no-any-return]


@pytest.fixture(params=["memory", "memory-keyed", "redis"])
async def target(request: pytest.FixtureRequest, aiohttp_client: Any,
                 caplog: pytest.LogCaptureFixture) -> AsyncIterator[Target]:
    store = request.getfixturevalue("redis_url") if request.param == "redis" else "memory"
    keyed = request.param.endswith("keyed")
    app = create_app(Settings(**{**FAST, "event_store": store, "max_body_bytes": MAX_BODY,
                                 "heartbeat": 0.05, "api_key": (KEY,) if keyed else ()}))
    client: TestClient = await aiohttp_client(app)
    auth = {"Authorization": f"Bearer {KEY}"} if keyed else {}
    response = await client.post("/api/mcp/v2/stream", json={"tool_name": "Echo", "arguments": {"text": "x"}},
                                 headers=auth)
    await response.read()
    finished = response.headers.get("X-Events-URL", "").split("/")[-2]
    response = await client.post("/api/mcp/v2/runs", json={"tool_name": "Wait", "arguments": {"seconds": 60}},
                                 headers=auth)
    running = (await response.json())["run_id"]
    yield Target(client, finished, running, keyed)
    await asyncio.sleep(0.1)  # what the last examples' streams log as they wind down counts too
    no_tracebacks(caplog.get_records("call"))


# --- what a request is made of ------------------------------------------------------------------------

def odd_text(max_size: int = 12) -> st.SearchStrategy[str]:
    """Strings a header or query value can carry (no CR, LF or NUL: the client refuses those)."""
    return st.text(st.characters(exclude_categories=("Cs", "Cc")), max_size=max_size)


def numbers_as_text() -> st.SearchStrategy[str]:
    return st.one_of(
        st.integers(-10, 2**64).map(str),
        st.sampled_from(["²", "١٢", "5_000", " 7 ", "0x10", "1e3", "nan", "inf", "-0", "00000000001", "",
                         "9" * 21, "1" * 4301, "+3"]),
    )


def run_ids(target: Target) -> st.SearchStrategy[str]:
    real = [target.finished, target.running]
    return st.one_of(
        st.sampled_from(real),
        st.sampled_from(real).map(lambda run_id: run_id + ":events"),
        st.sampled_from(real).map(str.upper),
        st.text("0123456789abcdef", min_size=31, max_size=33),
        st.sampled_from(["nope", "..", "%00", "%ff", "x" * 2000, "run:1", " ", "0" * 32]),
        odd_text(40).filter(lambda text: text not in ("", ".", "..") and "/" not in text and "?" not in text
                            and "#" not in text and "%" not in text),
    )


def segments() -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(["streaming_client.html", "nope", "..%2Fpyproject.toml", "%2e%2e", "x" * 300,
                                      "x" * 5000, "a%00b", ".", "%ff"]),
                     odd_text(30).filter(lambda text: text.strip(".") and not set(text) & set("/?#%")))


def event_ids(target: Target) -> st.SearchStrategy[str]:
    prefixes = st.sampled_from([target.finished[:8], target.running[:8], "deadbeef", ""])
    return st.one_of(
        st.builds(lambda prefix, number: f"{prefix}-{number}", prefixes, numbers_as_text()),
        numbers_as_text(),
        odd_text(30),
    )


def json_values(max_leaves: int = 12) -> st.SearchStrategy[Any]:
    scalars = st.one_of(
        st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False),
        st.sampled_from([10**30, -(2**63) - 1, 2**64, 1e308, 5e-324, -0.0]), st.text(max_size=20),
    )
    return st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                         st.dictionaries(st.text(max_size=8), inner, max_size=3)),
                        max_leaves=max_leaves)


def schema_values(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Cheap values that fit a parameter's JSON Schema (small numbers: a valid call must end soon)."""
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    if "anyOf" in schema:
        return st.one_of([schema_values(option) for option in schema["anyOf"]])
    kind = schema.get("type")
    if kind == "string":
        return st.one_of(st.sampled_from(["planner", "code-reviewer", "critic", "Hello. World!"]),
                         st.text(max_size=40))
    if kind in ("integer", "number"):
        low = int(schema.get("minimum", 0))
        return st.integers(low, low + 1) if kind == "integer" else st.floats(low, low + 0.05)
    if kind == "array":
        return st.lists(schema_values(schema.get("items", {})), min_size=1, max_size=3)
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    return json_values()


def valid_arguments(schema: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    properties: dict[str, Any] = schema.get("properties", {})
    required = set(schema.get("required", ()))
    return st.fixed_dictionaries({name: schema_values(properties[name]) for name in required},
                                 optional={name: schema_values(spec) for name, spec in properties.items()
                                           if name not in required})


def odd_arguments(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Each argument fitting or of another type (or missing, or unknown); or not an object at all."""
    fields = {name: st.one_of(schema_values(spec), json_values())
              for name, spec in schema.get("properties", {}).items()}
    return st.one_of(st.fixed_dictionaries({}, optional={**fields, "unknown_argument": json_values()}),
                     json_values(4))


VALID_OPTIONS = st.fixed_dictionaries({}, optional={
    "include_progress": st.booleans(), "chunk_size": st.sampled_from(["sentence", "word", "none", "paragraph"]),
    "resume_grace_s": st.sampled_from([0, 0.5])})
ODD_OPTIONS = st.one_of(
    st.fixed_dictionaries({}, optional={
        "include_progress": json_values(2), "chunk_size": json_values(2),
        "resume_grace_s": st.one_of(st.sampled_from([3600, 3601, -1, 1e308]), json_values(2)),
        "nonsense": json_values(2)}),
    json_values(3))


def tool_calls() -> st.SearchStrategy[dict[str, Any]]:
    """Calls of every tool that fit its schema, calls with odd arguments or options, odd tool names."""
    tools = st.sampled_from(list(served_tools()))
    valid = tools.flatmap(lambda tool: st.fixed_dictionaries(
        {"tool_name": st.just(tool.name), "arguments": valid_arguments(tool.input_schema)},
        optional={"stream_options": VALID_OPTIONS}))
    odd = tools.flatmap(lambda tool: st.fixed_dictionaries(
        {"tool_name": st.just(tool.name)},
        optional={"arguments": st.one_of(valid_arguments(tool.input_schema), odd_arguments(tool.input_schema)),
                  "stream_options": st.one_of(VALID_OPTIONS, ODD_OPTIONS)}))
    odd_name = st.fixed_dictionaries({"tool_name": json_values(2)}, optional={"arguments": json_values(3)})
    return st.one_of(valid, odd, valid, odd, odd_name)


def deep(depth: int) -> str:
    return "[" * depth + "0" + "]" * depth


def bodies() -> st.SearchStrategy[bytes]:
    encoded = st.builds(lambda call, ascii: json.dumps(call, ensure_ascii=ascii).encode(), tool_calls(),
                        st.booleans())
    odd = st.one_of(
        st.builds(lambda tool, depth: ('{"tool_name": "%s", "arguments": {"text": %s}}' % (tool, deep(depth))).encode(),
                  st.sampled_from(["Echo", "OrchestrateTeamChat"]), st.sampled_from([60, 63, 64, 65, 990, 1020, 1030])),
        st.builds(lambda depth: ('{"tool_name": "Echo", "stream_options": %s}' % deep(depth)).encode(),
                  st.sampled_from([64, 1000, 5000])),
        st.binary(max_size=64),
        st.sampled_from([b"", b"[]", b"null", b"1", b'"x"', b"{", b'{"tool_name": "Echo", "arguments": {"text": NaN}}',
                         b'{"tool_name": "Echo", "arguments": {"text": "\\ud800"}}', b"\xff\xfe{}", b"\xef\xbb\xbf{}",
                         b'{"tool_name": "Echo", "arguments": {"text": "' + b"a" * (MAX_BODY + 10) + b'"}}',
                         b'{"tool_name": "Echo", "arguments": {"text": 1' + b"0" * 5000 + b"}}"]),
    )
    return st.integers(0, 3).flatmap(lambda pick: odd if pick == 0 else encoded)  # 3 in 4: tool calls


@st.composite
def requests(draw: st.DrawFn, target: Target) -> dict[str, Any]:
    routes = list(target.app.router.routes())
    # Half the requests go to the routes that take a body: that is where most of the input is.
    route = draw(st.one_of(st.sampled_from(routes), st.sampled_from([r for r in routes if r.method == "POST"])))
    info = route.resource.get_info() if route.resource is not None else {}
    path = info.get("path") or info["formatter"]
    for variable in re.findall(r"{(\w+)}", path):  # a dynamic route: every variable gets odd values
        value = draw(run_ids(target) if variable == "run_id" else segments())
        path = path.replace("{%s}" % variable, value)
    method = draw(st.one_of(st.just(route.method), st.just(route.method), st.sampled_from(METHODS)))
    headers: dict[str, str] = {}
    if target.keyed and draw(st.integers(0, 3)):
        headers["Authorization"] = f"Bearer {KEY}"
    optional = {
        "Last-Event-ID": event_ids(target),
        "Content-Type": st.sampled_from(["application/json", "application/json; charset=latin-1", "text/plain",
                                         "multipart/form-data", "application/x-www-form-urlencoded", "", "*/*",
                                         "application/json; boundary=\"x"]),
        "Accept": st.sampled_from(["text/event-stream", "text/html", "*/*", "application/json", "", "x/y;q=2"]),
        "Origin": st.sampled_from(["http://evil.example", "null", "http://127.0.0.1", "", "http://[::1", "x"]),
        "Host": st.sampled_from(["evil.example", "127.0.0.1", "localhost:1", "", "[::1]", "a" * 300, "x:y:z"]),
        "Authorization": st.one_of(st.sampled_from(["Bearer", "Bearer ", "Basic eDp5", f"bearer {KEY}"]),
                                   odd_text(40).map(lambda text: f"Bearer {text}")),
        "Range": st.sampled_from(["bytes=0-1", "bytes=99999999-", "bytes=x"]),
    }
    body = draw(bodies()) if method in ("POST", "PUT", "PATCH", "DELETE") and draw(st.integers(0, 5)) else None
    if body is not None and draw(st.integers(0, 4)):
        headers["Content-Type"] = "application/json"
    for name, values in optional.items():
        # Rarely enough that most requests get past the Host, Origin and key checks to a handler.
        if draw(st.integers(0, 11 if name in ("Host", "Origin", "Authorization") else 5)) == 0:
            headers[name] = draw(values)
    query = draw(st.dictionaries(
        st.sampled_from(["count", "size", "interval_ms", "last_event_id", "token", "x", ""]),
        st.one_of(numbers_as_text(), event_ids(target), odd_text(20)), max_size=3))
    # Longer request lines are aiohttp's to refuse (in plain text, before any route): the raw test's.
    assume(len(URL.build(path=path, query=query).raw_path_qs) < 8000)
    return {"method": method, "path": path, "headers": headers, "query": query, "body": body,
            "route": f"{route.method} {route.resource.canonical if route.resource else path}"}


# --- what every answer must be ---------------------------------------------------------------------------

async def send(target: Target, request: dict[str, Any]) -> tuple[int, str, bytes]:
    """Status, content type and (the start of) the body; fails when the server does not answer."""
    client = target.client
    started = time.monotonic()
    try:
        async with asyncio.timeout(ANSWER_WITHIN):
            response = await client.request(request["method"], request["path"], params=request["query"],
                                            headers=request["headers"], data=request["body"],
                                            skip_auto_headers=["Content-Type"] if request["body"] is None else [])
    except TimeoutError:
        pytest.fail(f"no answer within {ANSWER_WITHIN} s to {request!r:.500}")
    async with response:
        kind = response.headers.get("Content-Type", "")
        if response.status == 200 and kind.startswith("text/event-stream"):
            body = b""
            try:
                async with asyncio.timeout(STREAM_READ):
                    async for data in response.content.iter_any():
                        body += data
            except TimeoutError:
                pass  # a live stream: the client hangs up, which the server must take as well
            return response.status, kind, body
        try:
            async with asyncio.timeout(ANSWER_WITHIN - (time.monotonic() - started) + 1):
                return response.status, kind, await response.read()
        except TimeoutError:
            pytest.fail(f"the body of a {response.status} did not end: {request!r:.500}")


def check(request: dict[str, Any], status: int, kind: str, body: bytes) -> None:
    shown = f"{request['method']} {request['path'][:200]} {request['query']!r:.200} {request['headers']!r:.300} " \
            f"body={request['body']!r:.300} -> {status} {body[:300]!r}"
    assert status < 500, shown
    if 400 <= status < 500 and request["path"].startswith("/api/") and request["method"] != "HEAD":
        assert kind.startswith("application/json"), shown
        error = json.loads(body)
        assert isinstance(error.get("error"), str) and error["error"] and isinstance(error.get("code"), str), shown
    if status == 204:
        assert body == b"", shown


def no_tracebacks(records: list[logging.LogRecord]) -> None:
    bad = [record for record in records if record.levelno >= logging.ERROR or record.exc_info]
    assert not bad, "\n".join(f"{record.levelname} {record.name}: {record.getMessage()}" for record in bad)


@fuzz(200)
@seed(SEED)
@given(data=st.data())
async def test_no_request_gets_a_5xx_a_traceback_or_no_answer(target: Target, caplog: pytest.LogCaptureFixture,
                                                              data: st.DataObject) -> None:
    caplog.set_level(logging.INFO)
    request = data.draw(requests(target))
    seen = len(caplog.records)
    status, kind, body = await send(target, request)
    event(f"{request['route']} -> {status}")  # what the examples reached: --hypothesis-show-statistics
    check(request, status, kind, body)
    await asyncio.sleep(0)  # a stream the client left ends its run: let that happen inside this example
    no_tracebacks(caplog.records[seen:])


# --- what aiohttp's client will not send --------------------------------------------------------------------

def raw_requests() -> st.SearchStrategy[bytes]:
    lines = st.one_of(
        st.sampled_from([b"GET / HTTP/1.1", b"GET /\x00 HTTP/1.1", b"BLAH", b"GET / HTTP/9.9", b"GET  HTTP/1.1",
                         b"POST /api/mcp/v2/stream HTTP/1.1", b"GET /api/mcp/v2/runs/%ff%fe/events HTTP/1.1",
                         b"GET /api/mcp/v2/runs/" + b"a" * 9000 + b" HTTP/1.1", b"GET /health HTTP/1.0",
                         b"GET /api/mcp/v2/stream/test?count=%ff HTTP/1.1"]),
        st.binary(max_size=40),
    )
    headers = st.lists(st.one_of(
        st.sampled_from([b"Host: 127.0.0.1", b"Content-Type: application/json", b"Transfer-Encoding: chunked",
                         b"Content-Length: 5", b"Content-Length: -1", b"Content-Length: 99999999999999999999",
                         b"Content-Length: 2", b"Transfer-Encoding: gzip, chunked", b"Last-Event-ID: \xff\xfe",
                         b"Bad Header: 1", b"X: " + b"a" * 9000, b"Connection: close", b"Expect: 100-continue",
                         b"Content-Encoding: gzip", b"Content-Encoding: br", b"Content-Encoding: x"]),
        st.binary(max_size=30)), max_size=5)
    bodies = st.one_of(st.sampled_from([b"", b"{}", b"zz\r\n", b"5\r\n{}\r\n0\r\n\r\n", b"3\r\n{}\r\n", b"\x1f\x8b"]),
                       st.binary(max_size=40))
    return st.builds(lambda line, header_lines, body: line + b"\r\n" + b"".join(h + b"\r\n" for h in header_lines)
                     + b"\r\n" + body, lines, headers, bodies)


@fuzz(120)
@seed(SEED)
@given(raw=raw_requests())
async def test_raw_requests_get_no_5xx_and_no_traceback(target: Target, caplog: pytest.LogCaptureFixture,
                                                        raw: bytes) -> None:
    caplog.set_level(logging.DEBUG, logger="aiohttp")
    server = target.client.server
    seen = len(caplog.records)
    reader, writer = await asyncio.open_connection(server.host, server.port)
    try:
        writer.write(raw)
        writer.write_eof()
        try:
            async with asyncio.timeout(ANSWER_WITHIN):
                answer = await reader.read(4096)
        except TimeoutError:
            pytest.fail(f"no answer to {raw!r:.300}")
    finally:
        writer.close()
    status_line = answer.split(b"\r\n", 1)[0]
    assert not status_line.startswith((b"HTTP/1.1 5", b"HTTP/1.0 5")), f"{raw!r:.300} -> {answer[:300]!r}"
    await asyncio.sleep(0)
    no_tracebacks(caplog.records[seen:])
