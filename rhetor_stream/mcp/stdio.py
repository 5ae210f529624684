"""`python -m rhetor_stream.mcp` (or `rhetor-stream-mcp`): the same tools over MCP's stdio transport,
for clients that launch their servers as subprocesses.

One JSON-RPC message per line on stdin, one per line on stdout; logs go to stderr, since anything else
on stdout would corrupt the protocol. The app is the HTTP server's (tools, roster, runs, event store)
without a listening socket, so a tools/call is a run here too and its messages are the same; there
are no sessions and nothing to resume, since the pipe lives exactly as long as the process. A call
ends with its result, with `notifications/cancelled`, or when stdin closes. Writes to stdout block:
a client that stops reading holds the tools back instead of growing a buffer.
"""
from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any

import orjson
from aiohttp import web

from rhetor_stream.errors import RhetorError
from rhetor_stream.mcp import protocol
from rhetor_stream.mcp.protocol import Message, RequestId, RpcError
from rhetor_stream.mcp.stream import CallStream, McpRelay
from rhetor_stream.runs.manager import LocalRun
from rhetor_stream.runs.store import StoreUnavailable
from rhetor_stream.settings import Settings, SettingsError
from rhetor_stream.stream.options import StreamOptions
from rhetor_stream.web.app import create_app
from rhetor_stream.web.state import STATE, AppState

log = logging.getLogger("rhetor_stream.mcp")

Write = Callable[[bytes], None]


class StdioServer:
    def __init__(self, app: web.Application, write: Write) -> None:
        self.app = app
        self.state: AppState = app[STATE]
        self.write = write
        self.calls: dict[RequestId, LocalRun] = {}
        self.tasks: set[asyncio.Task[None]] = set()

    async def serve(self, reader: asyncio.StreamReader) -> None:
        """Answer messages until stdin closes, then cancel the calls still running."""
        try:
            while True:
                try:
                    line = await reader.readline()
                except ValueError:  # longer than the limit: the rest of it is dropped
                    self.send(protocol.error(None, protocol.INVALID_REQUEST, "a message longer than "
                                             f"{self.state.settings.max_body_bytes} bytes"))
                    continue
                if not line:
                    return
                if line.strip():
                    self.handle(line)
        finally:
            for run in list(self.calls.values()):
                run.tool_run.cancel("client_disconnected")
            if self.tasks:
                await asyncio.wait(list(self.tasks))

    def handle(self, line: bytes) -> None:
        try:
            body = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            self.send(protocol.error(None, protocol.PARSE_ERROR, f"not valid JSON: {exc}"))
            return
        for raw in body if isinstance(body, list) and body else [body]:
            try:
                self.dispatch(protocol.parse(raw))
            except RpcError as exc:
                self.send(exc.response())

    def dispatch(self, message: Message) -> None:
        if not message.is_request:
            request_id = message.params.get("requestId")
            run = self.calls.get(request_id) if isinstance(request_id, (str, int)) else None
            if message.method == "notifications/cancelled" and run is not None:
                run.tool_run.cancel("cancelled")
        elif message.method == "initialize":
            self.send(protocol.result(message.id, protocol.initialize(message)[0]))
        elif message.method == "tools/call":
            task = asyncio.create_task(self.call(message))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        else:
            self.send(protocol.answer(message, self.state.tools))

    async def call(self, message: Message) -> None:
        assert message.id is not None
        checked = protocol.check_call(message, self.state.tools, self.app)
        if not isinstance(checked, protocol.ToolCall):
            self.send(checked)
            return
        try:
            run = await self.state.runs.create(checked.tool, checked.arguments, StreamOptions(), grace=None)
        except StoreUnavailable as exc:
            self.send(protocol.server_error(message.id, exc))
            return
        self.calls[message.id] = run
        try:
            await self.state.runs.forward(run.run_id, 0, McpRelay(CallStream("stdio", message.id,
                                                                             checked.progress_token),
                                                                  deliver=self.write))
        finally:
            if self.calls.get(message.id) is run:
                del self.calls[message.id]

    def send(self, message: dict[str, Any]) -> None:
        self.write(orjson.dumps(message))


async def serve(settings: Settings) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=settings.max_body_bytes)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    out = sys.stdout.buffer

    def write(message: bytes) -> None:
        out.write(message + b"\n")
        out.flush()

    app = create_app(settings)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()  # starts the run manager, the event store and the supervisor
    try:
        await StdioServer(app, write).serve(reader)
    finally:
        await runner.cleanup()


def main(argv: Sequence[str] | None = None) -> None:
    try:
        settings = Settings.from_sources(argv)
    except SettingsError as exc:
        print(f"rhetor_stream.mcp: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    logging.basicConfig(level=settings.log_level_number, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s")
    try:
        asyncio.run(serve(settings))
    except (SettingsError, RhetorError, RuntimeError) as exc:  # a bad --tools or --specialists, the store
        print(f"rhetor_stream.mcp: error: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        pass
