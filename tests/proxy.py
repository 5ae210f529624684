"""A TCP proxy that cuts a streaming response part-way, for tests of resuming."""
from __future__ import annotations

import asyncio
import threading


class CuttingProxy:
    """A TCP proxy that cuts the first response to a request whose request line contains `target`
    after `cut_after` bytes of it, as a flaky proxy or a sleeping laptop would; everything else
    passes untouched (keep-alive included). By default it cuts a run's events stream. With `only_if`,
    only a response whose first bytes contain it counts (`b"text/event-stream"` picks the streamed
    answers of a path that also answers JSON, such as `/mcp`)."""

    def __init__(self, upstream_port: int, cut_after: int, *, target: bytes = b"/events ",
                 only_if: bytes | None = None) -> None:
        self.upstream_port = upstream_port
        self.cut_after = cut_after
        self.target = target
        self.only_if = only_if
        self.cuts = 0
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._server: asyncio.AbstractServer | None = None

    def __enter__(self) -> CuttingProxy:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    async def _close(self) -> None:
        assert self._server is not None
        self._server.close()
        tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    async def _handle(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        armed = asyncio.Event()  # set when this connection carries the first events request

        async def requests() -> None:
            try:
                while data := await client_reader.read(65536):
                    if self.target in data.split(b"\r\n", 1)[0] and self.cuts == 0:
                        self.cuts = 1
                        armed.set()
                    upstream_writer.write(data)
                    await upstream_writer.drain()
            except ConnectionError:
                pass
            finally:
                upstream_writer.close()

        async def responses() -> None:
            passed = 0
            try:
                while data := await upstream_reader.read(65536):
                    if armed.is_set() and not passed and self.only_if is not None and self.only_if not in data:
                        armed.clear()  # not the response to cut: wait for the next request
                        self.cuts = 0
                    if armed.is_set():
                        if passed + len(data) >= self.cut_after:
                            client_writer.write(data[:self.cut_after - passed])
                            break
                        passed += len(data)
                    client_writer.write(data)
                    await client_writer.drain()
            except ConnectionError:
                pass
            finally:
                client_writer.close()

        try:
            await asyncio.gather(requests(), responses())
        except asyncio.CancelledError:
            pass  # the proxy is closing
