"""`python -m bench.stress`: attack a fresh server per row as a hostile client would, print one table.

Each attack starts its own `python -m rhetor_stream --port 0` (pinned to core 0 like the bench's
servers; this process runs on core 1), does its damage, reads its figure and kills the server,
whatever happened. Every wait has a cap, so a server that hangs or dies gives a row that says so
instead of a hung harness. Settings that only later versions of the server have (`--queue-bytes`,
a per-client cap) are read from `python -m rhetor_stream --help`, so the same script measures the
server before and after the fixes of issue 9. The targets are the promises of that issue; they are
absolute (milliseconds, MiB, seconds) because the promises are, so a busy machine can make a row
fail that passes on a quiet one: look at the figure, not only at the verdict.
"""
from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime
import json
import os
import re
import resource
import select
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from http.client import HTTPConnection, HTTPException
from typing import Any
from urllib.parse import quote

from bench.__main__ import machine
from bench.harness import PY, ROOT, cpu_seconds, rss_kib, server_setup
from bench.loadgen import pin, raise_fd_limit
from bench.stores import start_redis
from rhetor_stream.api import API

MIB = 1024 * 1024
LATENCY_TARGET = 0.1        # seconds /health may take while an adversarial request runs
LATENCY_CAP = 10.0          # seconds an adversarial request is given before the row says ">"
STORE_BUDGET = 10 * MIB     # --run-store-max-bytes of the memory rows
RSS_CAP = 1024 * MIB        # growth at which a memory attack stops: the figure is then ">="
LORIS_CAP = 15.0            # seconds a half-sent request may stay open when the server names no timeout
LORIS_MAX = 60.0            # never wait longer than this, whatever the server's timeout says
SHUTDOWN_CAP = 20.0
FD_LIMIT = 256
FUZZ_TIMEOUT = 3.0          # a fuzz request whose response has not ended by then is a hang


@dataclass
class Row:
    attack: str
    figure: str
    target: str
    ok: bool


# --- the server under test ---------------------------------------------------------------------------

@cache
def server_help() -> str:
    return subprocess.run([PY, "-m", "rhetor_stream", "--help"], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, check=True, env={**os.environ, "COLUMNS": "200"}).stdout


def flag_help(flag: str) -> str | None:
    """The server's --help entry of `flag`, or None when this version of the server has no such flag."""
    match = re.search(rf"^  {re.escape(flag)}\b.*?(?=^  -|\Z)", server_help(), re.MULTILINE | re.DOTALL)
    return match.group(0) if match else None


def has_flag(flag: str) -> bool:
    return flag_help(flag) is not None


def flag_default(flag: str) -> str | None:
    match = re.search(r"default: ([^\]]+)\]", flag_help(flag) or "")
    return match.group(1).strip("'") if match else None


def per_client_flags() -> list[str]:
    """A per-client-address connection cap, whatever it is called, lifted out of the way: attacks
    spread their connections over many loopback addresses anyway, this is for those that cannot."""
    flags = re.findall(r"^  (--max-[a-z-]*per-(?:client|address|ip)[a-z-]*)", server_help(), re.MULTILINE)
    return [flags[0], "100000"] if flags else []


class Server:
    """One `python -m rhetor_stream --port 0 ...` process; its log goes to a temporary file."""

    def __init__(self, *flags: str, nofile: int | None = None) -> None:
        self.log = tempfile.TemporaryFile()  # noqa: SIM115  (open while the server runs; closed in stop())
        self.process = subprocess.Popen([PY, "-m", "rhetor_stream", "--port", "0", *flags], cwd=ROOT,
                                        stdout=subprocess.PIPE, stderr=self.log,
                                        preexec_fn=server_setup if nofile is None else _low_fd_limit(nofile))
        try:
            self.port = self._read_port()
        except BaseException:
            self.stop()
            raise

    def _read_port(self) -> int:
        assert self.process.stdout is not None
        deadline = time.monotonic() + 30
        printed = b""
        while (match := re.search(rb"Serving on http://\S+:(\d+)", printed)) is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self.process.poll() is not None:
                raise RuntimeError(f"the server did not start: {self.log_text()[-500:]!r}")
            if select.select([self.process.stdout], [], [], min(remaining, 0.5))[0]:
                printed += os.read(self.process.stdout.fileno(), 4096)
        return int(match.group(1))

    @property
    def pid(self) -> int:
        return self.process.pid

    def rss(self) -> int:
        return rss_kib(self.pid) * 1024

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid)

    def log_size(self) -> int:
        return os.fstat(self.log.fileno()).st_size

    def log_text(self, start: int = 0) -> str:
        self.log.flush()
        return os.pread(self.log.fileno(), self.log_size() - start, start).decode(errors="replace")

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM, and SIGKILL after `grace` seconds (at once when the loop is known to be stuck)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        if self.process.stdout is not None:
            self.process.stdout.close()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self.log.close()


def _low_fd_limit(nofile: int) -> Callable[[], None]:
    """The hard limit too: a server that lifts its soft limit to the hard one must still meet the wall."""
    def setup() -> None:
        server_setup()
        resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
    return setup


# --- raw HTTP ------------------------------------------------------------------------------------------

def source(index: int) -> tuple[str, int]:
    """A distinct loopback address per connection: a per-address cap must not hide the global one."""
    return f"127.1.{index // 250}.{index % 250 + 1}", 0


def http(method: str, path: str, body: bytes | None = None, headers: tuple[str, ...] = ()) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close", *headers]
    if body is not None:
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")


def call(tool: str, arguments: dict[str, Any], **options: Any) -> bytes:
    return json.dumps({"tool_name": tool, "arguments": arguments, "stream_options": options}).encode()


@dataclass
class Reply:
    status: int | None
    head: bytes                 # the first 64 KiB of the response
    ended: bool                 # the server closed the connection (or sent `until`) before the timeout
    answered: float | None      # seconds until the first byte of the response
    took: float                 # seconds until the end (or the timeout)

    def json(self) -> Any:
        return json.loads(self.head.partition(b"\r\n\r\n")[2])


async def exchange(port: int, request: bytes, *, timeout: float, until: bytes | None = None,
                   local: tuple[str, int] | None = None) -> Reply:
    head, tail, ended, answered = b"", b"", False, None
    started = time.monotonic()

    async def talk() -> None:
        nonlocal head, tail, ended, answered
        reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=local)
        try:
            writer.write(request)
            while block := await reader.read(65536):
                answered = answered or time.monotonic() - started
                if len(head) < 65536:
                    head += block[:65536 - len(head)]
                tail = (tail + block)[-256:]
                if until is not None and until in tail:
                    break
            ended = True
        finally:
            writer.close()

    try:
        await asyncio.wait_for(talk(), timeout)
    except (TimeoutError, OSError) as exc:
        ended = isinstance(exc, OSError) and not isinstance(exc, asyncio.TimeoutError)
    match = re.match(rb"HTTP/1\.[01] (\d{3})", head)
    return Reply(int(match.group(1)) if match else None, head, ended, answered, time.monotonic() - started)


async def health(port: int, timeout: float = 2.0) -> dict[str, Any] | None:
    reply = await exchange(port, http("GET", "/health"), timeout=timeout)
    try:
        return reply.json() if reply.status is not None else None
    except ValueError:
        return None


def stuck_socket(port: int, request: bytes, index: int) -> socket.socket:
    """A client that sends its request and then never reads: a tiny receive buffer, nothing taken."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(5)
    sock.bind(source(index))
    try:
        sock.connect(("127.0.0.1", port))
        sock.sendall(request)
    except OSError:  # refused (a capacity limit, say): `statuses` tells
        pass
    return sock


@contextmanager
def held(sockets: list[socket.socket]) -> Iterator[list[socket.socket]]:
    try:
        yield sockets
    finally:
        for sock in sockets:
            sock.close()


def statuses(sockets: list[socket.socket]) -> str:
    """The HTTP statuses the stuck clients were sent (read at the end), e.g. "HTTP 200 x3"."""
    seen: dict[str, int] = {}
    for sock in sockets:
        try:
            sock.settimeout(0.2)
            match = re.match(rb"HTTP/1\.[01] (\d{3})", sock.recv(64))
            status = match.group(1).decode() if match else "none"
        except OSError:
            status = "none"
        seen[status] = seen.get(status, 0) + 1
    return ", ".join(f"HTTP {status} x{count}" for status, count in sorted(seen.items()))


class Drain(asyncio.Protocol):
    """A client that reads everything and notes whether a marker went by (kept across reads)."""

    def __init__(self, request: bytes, marker: bytes = b"") -> None:
        self.request, self.marker = request, marker
        self.status: int | None = None
        self.seen = False
        self.tail = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        window = self.tail + data
        if self.status is None and (match := re.match(rb"HTTP/1\.[01] (\d{3})", window)):
            self.status = int(match.group(1))
        self.seen = self.seen or (bool(self.marker) and self.marker in window)
        self.tail = window[-64:]


async def open_drains(port: int, request: bytes, count: int, *, marker: bytes = b"") -> list[Drain]:
    loop = asyncio.get_running_loop()

    async def one(index: int) -> Drain | None:
        drain = Drain(request, marker)
        try:
            await asyncio.wait_for(loop.create_connection(lambda: drain, "127.0.0.1", port,
                                                          local_addr=source(index)), 3)
        except (TimeoutError, OSError):
            return None
        return drain

    drains = await asyncio.gather(*(one(index) for index in range(count)))
    return [drain for drain in drains if drain is not None]


def close_all(drains: list[Drain]) -> None:
    for drain in drains:
        if drain.transport is not None:
            drain.transport.close()


# --- 1. one request must not freeze every client ----------------------------------------------------

class HealthPoller:
    """GET /health every 20 ms on its own thread and connection; remembers the slowest answer, and a
    request still unanswered counts with its age so far."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.latencies: list[float] = []
        self.failures = 0
        self.pending: float | None = None
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        connection: HTTPConnection | None = None
        while not self.done.is_set():
            self.pending = started = time.monotonic()
            try:
                connection = connection or HTTPConnection("127.0.0.1", self.port, timeout=60)
                connection.request("GET", "/health")
                connection.getresponse().read()
                self.latencies.append(time.monotonic() - started)
            except (OSError, HTTPException):
                self.failures += not self.done.is_set()
                if connection is not None:
                    connection.close()
                connection = None
            self.pending = None
            self.done.wait(0.02)

    def stop(self) -> tuple[float, bool]:
        """The worst latency, counting a request still in flight, and whether that one is the worst."""
        pending = self.pending
        self.done.set()
        in_flight = time.monotonic() - pending if pending is not None else 0.0
        answered = max(self.latencies, default=0.0)
        return max(answered, in_flight), in_flight > answered


async def latency_row(name: str, body: bytes) -> Row:
    with Server() as server:
        await health(server.port)
        poller = HealthPoller(server.port)
        await asyncio.sleep(0.3)
        started = time.monotonic()
        reply = await exchange(server.port, http("POST", f"{API}/stream", body), timeout=LATENCY_CAP,
                               until=b"event: disconnect")
        took = time.monotonic() - started
        await asyncio.sleep(0.1)
        worst, waiting = poller.stop()
        server.stop(grace=0 if waiting else 5)
    stream = (f"stream ended after {took:.1f} s, HTTP {reply.status}" if reply.ended
              else f"stream still running after {LATENCY_CAP:.0f} s")
    shown = f"{worst:.1f} s" if worst >= 1 else f"{worst * 1000:.0f} ms"
    figure = f"{'> ' if waiting else ''}{shown} ({stream}"
    figure += f"; {poller.failures} /health failures)" if poller.failures else ")"
    return Row(f"/health during {name}", figure, f"<= {LATENCY_TARGET * 1000:.0f} ms",
               worst <= LATENCY_TARGET and not poller.failures and len(poller.latencies) > 10)


async def latency_rows(plan: Plan) -> list[Row]:
    words = " ".join(f"term{index}x" for index in range(16_000))
    paragraph_text = ". " * ((1024 * 1024 - 200) // 2)
    return [
        await latency_row('StreamText "." * 16000', call("StreamText", {"text": "." * 16_000, "delay_ms": 0})),
        await latency_row("one 1 MB word", call("StreamText", {"text": "A" * 1_000_000, "delay_ms": 0})),
        await latency_row("specialist message of 16,000 distinct words",
                          call("SendMessageToSpecialistStream", {"specialist_id": "code-reviewer",
                                                                 "message": words})),
        await latency_row('1 MiB body: ". " * 524k, paragraph chunks',
                          call("StreamText", {"text": paragraph_text, "delay_ms": 0}, chunk_size="paragraph")),
    ]


# --- 2 and 3. memory against the budgets ------------------------------------------------------------

class PeakRss:
    """Samples the server's RSS every 50 ms; `over` is set once growth passes RSS_CAP."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.base = self.peak = server.rss()
        self.over = asyncio.Event()
        self.task = asyncio.create_task(self._sample())

    async def _sample(self) -> None:
        while self.server.process.poll() is None:
            try:
                self.peak = max(self.peak, self.server.rss())
            except (OSError, RuntimeError):
                return
            if self.peak - self.base >= RSS_CAP:
                self.over.set()
            await asyncio.sleep(0.05)

    async def watch(self, seconds: float) -> None:
        """Wait `seconds`, or less once the cap is passed."""
        try:
            await asyncio.wait_for(self.over.wait(), seconds)
        except TimeoutError:
            pass

    def growth(self) -> str:
        self.task.cancel()
        growth = (self.peak - self.base) / MIB
        died = "; the server died" if self.server.process.poll() is not None else ""
        return f">= {growth:,.0f} MiB (stopped at the cap{died})" if self.over.is_set() else f"{growth:,.1f} MiB{died}"


async def store_detached(plan: Plan) -> Row:
    """Many finished runs of many small events: the memory store must stay near its budget."""
    body = call("StreamText", {"text": "w " * 2000, "delay_ms": 0}, chunk_size="word", include_progress=False)
    with Server("--run-store-max-bytes", str(STORE_BUDGET)) as server:
        for _ in range(3):
            await exchange(server.port, http("POST", f"{API}/runs", body), timeout=5)
        await asyncio.sleep(1)
        rss = PeakRss(server)
        started = 0
        while started < plan.store_runs and not rss.over.is_set() and server.process.poll() is None:
            batch = min(10, plan.store_runs - started)
            await asyncio.gather(*(exchange(server.port, http("POST", f"{API}/runs", body), timeout=5)
                                   for _ in range(batch)))
            started += batch
        deadline = time.monotonic() + 30
        while not rss.over.is_set() and time.monotonic() < deadline:
            state = await health(server.port)
            if state is not None and state["active_tools"] == 0:
                break
            await asyncio.sleep(0.2)
        await rss.watch(0.5)
        figure = rss.growth()
    return Row(f"RSS growth, {started} detached runs of 2,000 events",
               f"{figure} (budget {STORE_BUDGET // MIB} MiB)", f"<= {1.5 * STORE_BUDGET / MIB:.0f} MiB",
               not rss.over.is_set() and rss.peak - rss.base <= 1.5 * STORE_BUDGET)


async def store_stuck_streams(plan: Plan) -> Row:
    """POST /stream runs whose clients stopped reading: the runs go on, their events are stored."""
    body = call("StreamText", {"text": "w " * 100_000, "delay_ms": 0}, chunk_size="word", include_progress=False)
    with Server("--run-store-max-bytes", str(STORE_BUDGET), *per_client_flags()) as server:
        await health(server.port)
        await asyncio.sleep(0.5)
        rss = PeakRss(server)
        with held([stuck_socket(server.port, http("POST", f"{API}/stream", body), index)
                   for index in range(plan.stuck_streams)]) as sockets:
            await rss.watch(plan.stuck_seconds)
            peak = rss.growth()
            answers = statuses(sockets)
        await asyncio.sleep(2)
        after = f"{(server.rss() - rss.base) / MIB:,.0f} MiB" if server.process.poll() is None else "(dead)"
    return Row(f"RSS growth, {plan.stuck_streams} stuck POST /stream readers",
               f"{peak}; {after} 2 s after they left ({answers}; budget {STORE_BUDGET // MIB} MiB)",
               f"<= {1.5 * STORE_BUDGET / MIB:.0f} MiB",
               not rss.over.is_set() and rss.peak - rss.base <= 1.5 * STORE_BUDGET)


async def test_stream_stuck(plan: Plan) -> Row:
    """GET /stream/test with the largest events it accepts (1 MiB, or less once its bounds are sane)
    and readers that stopped: memory per stream must be bounded in bytes (--queue-bytes), not only
    in events."""
    readers = 3
    queue_bytes = int(flag_default("--queue-bytes") or MIB)
    allowed = readers * (4 * queue_bytes + 4 * MIB)
    with Server(*per_client_flags()) as server:
        await health(server.port)
        size = await largest_test_event(server.port)
        await asyncio.sleep(0.5)
        rss = PeakRss(server)
        request = http("GET", f"{API}/stream/test?count=100000&size={size}&interval_ms=0")
        with held([stuck_socket(server.port, request, index) for index in range(readers)]) as sockets:
            await rss.watch(plan.stuck_seconds)
            figure = f"{rss.growth()} ({statuses(sockets)})"
    assumed = "" if has_flag("--queue-bytes") else ", --queue-bytes taken as 1 MiB"
    refused = "" if size == MIB else " (1 MiB refused)"
    return Row(f"RSS growth, {readers} stuck readers of /stream/test?size={size}{refused}", figure,
               f"<= {allowed / MIB:.0f} MiB ({readers} x (4 x queue bytes + 4 MiB){assumed})",
               not rss.over.is_set() and rss.peak - rss.base <= allowed)


async def largest_test_event(port: int) -> int:
    """The largest `size` of 1 MiB, 256 KiB, 64 KiB or 16 KiB that /stream/test accepts."""
    for size in (MIB, MIB // 4, MIB // 16, MIB // 64):
        reply = await exchange(port, http("GET", f"{API}/stream/test?count=1&size={size}&interval_ms=0"), timeout=5)
        if reply.status == 200:
            return size
    raise RuntimeError("/stream/test refused every size down to 16 KiB")


# --- 4. clients that leave before the response starts --------------------------------------------

async def early_disconnects(plan: Plan, store: str, label: str) -> Row:
    body = call("Wait", {"seconds": 3600})
    request = http("POST", f"{API}/stream", body)
    with Server("--event-store", store, *per_client_flags()) as server:
        await health(server.port)
        refused = 0
        for index in range(plan.disconnects):
            with socket.socket() as sock:
                if index % 2:  # half of them leave with a RST instead of a FIN
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                sock.settimeout(5)
                sock.bind(source(index))
                try:
                    sock.connect(("127.0.0.1", server.port))
                    sock.sendall(request)
                except OSError:
                    refused += 1
        await asyncio.sleep(1)
        deadline = time.monotonic() + plan.settle
        left: int | str = "no /health answer"
        while time.monotonic() < deadline:
            state = await health(server.port)
            left = state["active_tools"] if state is not None else "no /health answer"
            if left == 0:
                break
            await asyncio.sleep(0.25)
    return Row(f"runs left after {plan.disconnects} early closes ({label})",
               f"{left} running ({plan.disconnects // 2} FIN, {plan.disconnects - plan.disconnects // 2} RST"
               + (f", {refused} could not send" if refused else "") + ")",
               "0", left == 0)


# --- 6. odd input ---------------------------------------------------------------------------------------

def nested(depth: int) -> bytes:
    """JSON text of a list `depth` deep (built as text: json.dumps itself would hit the recursion limit)."""
    return b"[" * depth + b'"x"' + b"]" * depth


async def fuzz(plan: Plan, store: str, label: str) -> Row:
    with Server("--event-store", store) as server:
        port = server.port
        finished = (await exchange(port, http("POST", f"{API}/runs", call("Echo", {"text": "hi"})), timeout=5)).json()
        running = (await exchange(port, http("POST", f"{API}/runs", call("Wait", {"seconds": 3600})),
                                  timeout=5)).json()
        done, live = finished["run_id"], running["run_id"]
        await asyncio.sleep(0.5)
        last = (await event_ids(port, done, until=b"event: disconnect"))[-1]
        live_first = (await event_ids(port, live, until=b"\n\n"))[0]
        requests = hostile_requests(done, live, last, live_first.rpartition("-")[0])
        requests += await mcp_hostile_requests(port)
        log_start = server.log_size()
        semaphore = asyncio.Semaphore(16)

        async def send(request: bytes) -> Reply:
            async with semaphore:
                return await exchange(port, request, timeout=FUZZ_TIMEOUT, until=b"event: disconnect")

        replies = await asyncio.gather(*(send(request) for request in requests))
        await asyncio.sleep(0.3)
        log = server.log_text(log_start)
    if plan.verbose:
        for request, reply in zip(requests, replies):
            if not reply.ended or reply.status is None or reply.status >= 500:
                outcome = "hang" if not reply.ended else reply.status
                print(f"  {label}: {outcome} <- {request[:120]!r}", file=sys.stderr)
        print(log, file=sys.stderr)
    errors = sum(1 for reply in replies if reply.status is not None and reply.status >= 500)
    hangs = sum(1 for reply in replies if not reply.ended)
    silent = sum(1 for reply in replies if reply.ended and reply.status is None)
    tracebacks = log.count("Traceback")
    return Row(f"fuzz: {len(requests)} hostile requests ({label})",
               f"{errors} 5xx, {hangs} hangs (> {FUZZ_TIMEOUT:g} s), {silent} closed without an answer, "
               f"{tracebacks} tracebacks logged", "0, 0, 0, 0", errors == hangs == silent == tracebacks == 0)


async def event_ids(port: int, run_id: str, *, until: bytes) -> list[str]:
    """The event ids a run's events stream shows (read up to `until`): the harness learns the id format
    from the server instead of assuming it."""
    reply = await exchange(port, http("GET", f"{API}/runs/{run_id}/events"), timeout=5, until=until)
    ids = [value.decode() for value in re.findall(rb"^id: (\S+)$", reply.head, re.MULTILINE)]
    if not ids:
        raise RuntimeError(f"no event ids in the events of run {run_id}: {reply.head[:300]!r}")
    return ids


def hostile_requests(done: str, live: str, last: str, live_prefix: str) -> list[bytes]:
    """A fixed list: Last-Event-ID oddities, deep nesting, hostile run ids and query values, and
    request lines and headers that are not HTTP. `done` is a finished run whose last event id is
    `last`, `live` a running one whose ids start with `live_prefix`."""
    prefix = last.rpartition("-")[0]
    events = f"{API}/runs/{done}/events"
    odd_ids = [f"{prefix}-\u00b2", f"{prefix}-\u0663", f"{prefix}-" + "9" * 5000, f"{prefix}--1", f"{prefix}-",
               "-", f"{prefix}-1e3", f"{prefix}- 1", f"{prefix}-0x10", last, f"{prefix}-1000",
               f"{prefix}-{2 ** 64}"]
    out = [http("GET", events, headers=(f"Last-Event-ID: {value}",)) for value in odd_ids]
    out += [http("GET", f"{events}?last_event_id={quote(value, safe='')}") for value in odd_ids]
    out.append(http("GET", f"{API}/runs/{live}/events", headers=(f"Last-Event-ID: {live_prefix}-1000",)))
    for depth in (990, 1000, 1010, 1020, 1030):
        for route in ("stream", "process", "runs"):
            for body in (b'{"tool_name": "Echo", "arguments": {"text": "x", "extra": %s}}',
                         b'{"tool_name": "Echo", "arguments": %s}',
                         b'{"tool_name": "Echo", "arguments": {"text": "x"}, "stream_options": {"chunk_size": %s}}'):
                out.append(http("POST", f"{API}/{route}", body % nested(depth)))
    for run_id in (f"{done}:events", f"{live}:events", "..%2F..%2Finstance", "%00", "x" * 4000, "%C3%BC",
                   "*", "rhetor:cancel"):
        out += [http("GET", f"{API}/runs/{run_id}"), http("GET", f"{API}/runs/{run_id}/events"),
                http("DELETE", f"{API}/runs/{run_id}")]
    out.append(http("DELETE", f"{API}/runs/{done}"))
    for query in ("count=-1", "count=99999999999999999999999999", "size=0", "size=%C2%B2", "interval_ms=1e3",
                  "count=%00", "count=1&count=2", "size=1048577", "count=1&size=1&interval_ms=-5"):
        out.append(http("GET", f"{API}/stream/test?{query}"))
    bodies = [b"", b"null", b"[]", b"\xff\xfe{", b'{"tool_name": null}', b'{"tool_name": ["Echo"]}',
              b'{"tool_name": "Echo", "arguments": {"text": "\\ud800"}}',
              b'{"tool_name": "Echo", "arguments": []}', b'{"tool_name": "Echo", "arguments": {"text": 1e999}}',
              b'{"tool_name": "Wait", "arguments": {"seconds": 1e308}}',
              b'{"tool_name": "Wait", "arguments": {"seconds": 100000000000000000000000000000000}}',
              b'{"tool_name": "Wait", "arguments": {"seconds": -0.0}}',
              b'{"tool_name": "Wait", "arguments": {"seconds": true}}',
              b'{"tool_name": "StreamText", "arguments": {"text": "a", "delay_ms": 1e20}}',
              b'{"tool_name": "Echo", "arguments": {"text": "x"}, "stream_options": {"resume_grace_s": 1e308}}',
              b'{"tool_name": "Echo", "arguments": {"text": "x"}, "stream_options": {"resume_grace_s": "inf"}}',
              b'{"tool_name": "Echo", "arguments": {"text": "x"}, "stream_options": {"chunk_size": {}}}',
              b'{"tool_name": "SendMessageToSpecialist", "arguments": {"specialist_id": ["critic"], "message": "x"}}',
              b'{"tool_name": "SendMessageToSpecialist", "arguments": {"specialist_id": "critic", "message": "x",'
              b' "message_type": "x"}}',
              b'{"tool_name": "OrchestrateTeamChat", "arguments": {"topic": "x", "rounds": 1e9}}',
              b'{"tool_name": "\\u0000", "arguments": {}}', b'{"tool_name": "Echo", "tool_name": "Wait"}']
    for body in bodies:
        out += [http("POST", f"{API}/process", body), http("POST", f"{API}/stream", body)]
    out += [b"GARBAGE\r\n\r\n", b"GET /health HTTP/9.9\r\nConnection: close\r\n\r\n",
            b"GET /he\x00alth HTTP/1.1\r\nConnection: close\r\n\r\n",
            b"GET /health HTTP/1.1\r\nHost x\r\nConnection: close\r\n\r\n",
            b"POST /api/mcp/v2/process HTTP/1.1\r\nContent-Length: abc\r\nConnection: close\r\n\r\n",
            b"POST /api/mcp/v2/process HTTP/1.1\r\nContent-Length: -1\r\nConnection: close\r\n\r\n",
            b"POST /api/mcp/v2/process HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json"
            b"\r\nConnection: close\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
            b"GET /health HTTP/1.1\r\nX-Long: " + b"a" * 100_000 + b"\r\nConnection: close\r\n\r\n",
            b"GET /health HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % n for n in range(500))
            + b"Connection: close\r\n\r\n",
            b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\nConnection: close\r\n\r\n",
            b"GET /health HTTP/1.1\r\nHost: \xff\xfe\r\nConnection: close\r\n\r\n",
            http("GET", "/static/../../setup.cfg"), http("GET", "/static/%2e%2e/%2e%2e/setup.cfg"),
            http("PUT", "/health"), http("OPTIONS", f"{API}/stream"), http("HEAD", "/health"),
            http("GET", f"{API}/tools", headers=("Accept: \xff",)),
            http("POST", f"{API}/process", b"{}", headers=("Content-Type: text/plain",)),
            http("GET", f"{API}/stream/test?count=1&size=1&interval_ms=0", headers=("Last-Event-ID: \u00b2",))]
    return out


MCP_ACCEPT = "Accept: application/json, text/event-stream"


def rpc(id: Any, method: str, params: Any = None) -> bytes:
    message: dict[str, Any] = {"jsonrpc": "2.0", "id": id, "method": method}
    if params is not None:
        message["params"] = params
    return json.dumps(message).encode()


async def mcp_hostile_requests(port: int) -> list[bytes]:
    """The same spirit on /mcp, when the server has it: odd JSON-RPC with and without a session, odd
    session ids, protocol versions and `Last-Event-ID`s of a real call's stream."""
    initialize = rpc(0, "initialize", {"protocolVersion": "2025-11-25", "capabilities": {},
                                       "clientInfo": {"name": "stress", "version": "1"}})
    reply = await exchange(port, http("POST", "/mcp", initialize, headers=(MCP_ACCEPT,)), timeout=5)
    found = re.search(rb"(?im)^mcp-session-id: (\S+)\r$", reply.head)
    if reply.status != 200 or found is None:
        return []  # a server without /mcp
    session = found.group(1).decode()
    headers = (MCP_ACCEPT, f"Mcp-Session-Id: {session}")
    echo = await exchange(port, http("POST", "/mcp", rpc(1, "tools/call", {"name": "Echo", "arguments": {"text": "x"}}),
                                     headers=headers), timeout=5)
    ids = [value.decode() for value in re.findall(rb"^id: (\S+)$", echo.head, re.MULTILINE)]
    prefix = ids[0].rpartition("-")[0] if ids else "x"
    run_id, _, call = prefix.partition(".")
    bodies = [b"", b"null", b"[]", b"[[]]", b"\xff\xfe{", b'{"jsonrpc": "2.0"}', b'{"jsonrpc": "2.0", "id": null}',
              rpc(2, "ping", []), rpc(3, "ping", "x"), rpc({"a": 1}, "ping"), rpc(True, "ping"), rpc(1.5, "ping"),
              rpc("x" * 100_000, "ping"), rpc(2 ** 80, "ping"), rpc(4, "\u0000"), rpc(5, "tools/call"),
              rpc(6, "tools/call", {"name": ["Echo"]}), rpc(7, "tools/call", {"name": "Echo", "arguments": []}),
              rpc(8, "tools/call", {"name": "Echo", "arguments": {"text": "x"}, "_meta": {"progressToken": {}}}),
              rpc(9, "tools/call", {"name": "Echo", "arguments": {"text": "x"}, "_meta": []}),
              rpc(10, "tools/call", {"name": "Wait", "arguments": {"seconds": 1e308}}),
              rpc(1, "tools/call", {"name": "Echo", "arguments": {"text": "x"}}),  # a reused id
              rpc(11, "logging/setLevel", {"level": {}}), rpc(12, "initialize", {"protocolVersion": 7}),
              json.dumps({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": {}}}).encode(),
              json.dumps([{"jsonrpc": "2.0", "id": 13, "method": "ping"}] * 1000).encode()]
    bodies += [b'{"jsonrpc": "2.0", "id": 14, "method": "tools/call", "params": {"name": "Echo", "arguments": '
               b'{"text": "x", "extra": %s}}}' % nested(depth) for depth in (990, 1020)]
    out = [http("POST", "/mcp", body, headers=headers) for body in bodies]
    out += [http("POST", "/mcp", rpc(20, "ping"), headers=(MCP_ACCEPT, f"Mcp-Session-Id: {value}"))
            for value in ("", "x", session + "x", "." * 3, "\u00b2" * 10, "a" * 100_000)]
    out += [http("POST", "/mcp", rpc(21, "ping"), headers=(*headers, f"MCP-Protocol-Version: {value}"))
            for value in ("2026-07-28", "", "\u00b2", "x" * 10_000)]
    odd_ids = [f"{prefix}-\u00b2", f"{prefix}-" + "9" * 5000, f"{prefix}-{2 ** 64}", f"{prefix}--1", f"{prefix}-1000",
               f"{run_id}.AAAA-1", f"{run_id}.{call}x-1", f"{run_id}.-1", "." + call + "-1", "-", "..-1",
               f"{'0' * 32}.{call}-1", ids[-1] if ids else "x"]
    out += [http("GET", "/mcp", headers=(*headers, f"Last-Event-ID: {value}")) for value in odd_ids]
    out += [http("GET", "/mcp", headers=headers), http("PUT", "/mcp", b"{}"), http("OPTIONS", "/mcp"),
            http("POST", "/mcp", b"{}", headers=("Content-Type: text/plain",)),
            http("POST", "/mcp", rpc(22, "ping"), headers=("Accept: text/html", f"Mcp-Session-Id: {session}")),
            http("DELETE", "/mcp", headers=("Mcp-Session-Id: nope",))]
    return out


# --- 8. shutdown with stuck readers ---------------------------------------------------------------

async def shutdown(plan: Plan) -> Row:
    timeout = float(flag_default("--shutdown-timeout") or 4.0)
    allowed = timeout + 0.5
    readers, stuck = plan.shutdown_streams - 20, 20
    with Server(*per_client_flags()) as server:
        port = server.port
        drains = await open_drains(port, http("GET", f"{API}/stream/test?count=1000000&size=128&interval_ms=100"),
                                   readers, marker=b"server_shutdown")
        test_stuck = http("GET", f"{API}/stream/test?count=1000000&size=16384&interval_ms=0")
        run_stuck = http("POST", f"{API}/stream", call("StreamText", {"text": "w " * 100_000, "delay_ms": 0},
                                                       chunk_size="word"))
        with held([stuck_socket(port, test_stuck if index % 2 else run_stuck, readers + index)
                   for index in range(stuck)]):
            await asyncio.sleep(3)
            server.process.send_signal(signal.SIGTERM)
            started = time.monotonic()
            try:
                await asyncio.to_thread(server.process.wait, SHUTDOWN_CAP)
                took: float | None = time.monotonic() - started
            except subprocess.TimeoutExpired:
                took = None
            told = sum(1 for drain in drains if drain.seen)
            close_all(drains)
    figure = (f"{took:.1f} s" if took is not None else f"> {SHUTDOWN_CAP:.0f} s (killed)") + \
        f"; {told} of {len(drains)} reading clients got server_shutdown"
    return Row(f"SIGTERM with {readers + stuck} streams, {stuck} not reading", figure,
               f"<= {allowed:g} s (--shutdown-timeout {timeout:g} s + 0.5 s)", took is not None and took <= allowed)


# --- 7. at the fd limit -------------------------------------------------------------------------------

async def fd_limit(plan: Plan) -> Row:
    with Server(nofile=FD_LIMIT) as server:
        port = server.port
        await health(port)
        log_start, cpu_start, started = server.log_size(), server.cpu_seconds(), time.monotonic()
        drains = await open_drains(port, http("GET", f"{API}/stream/test?count=2&size=64&interval_ms=3600000"),
                                   plan.fd_connections)
        await asyncio.sleep(2)
        answered = 0
        for _ in range(5):
            answered += await health(port, timeout=1.0) is not None
            await asyncio.sleep(0.3)
        codes = [drain.status for drain in drains]
        window = time.monotonic() - started
        cpu = (server.cpu_seconds() - cpu_start) / window
        log = server.log_text(log_start)
        close_all(drains)
    if plan.verbose:
        print(log[:3000], file=sys.stderr)
    lines = log.count("\n")
    ok_count, busy = codes.count(200), codes.count(503)
    silent = plan.fd_connections - ok_count - busy
    figure = (f"/health {answered}/5 answered; {ok_count} streams, {busy} 503, {silent} no answer; "
              f"log {lines:,} lines ({len(log.encode()) / 1024:,.0f} KiB) in {window:.0f} s; server CPU {cpu:.0%}")
    return Row(f"{plan.fd_connections} connections at a {FD_LIMIT}-fd limit", figure,
               "/health 5/5, every client answered (200 or 503), <= 20 log lines",
               answered == 5 and silent == 0 and lines <= 20)


# --- 8. slow-loris --------------------------------------------------------------------------------------

def read_timeout(word: str) -> tuple[str, float] | None:
    """The server's `--...-timeout` whose help speaks of `word` ("header", "body") and its default:
    the slow-loris rows wait for the server's own promise, whatever the fix calls it."""
    for match in re.finditer(r"^  (--[a-z-]+-timeout)\b.*?(?=^  -|\Z)", server_help(), re.MULTILINE | re.DOTALL):
        default = flag_default(match.group(1))
        if word in match.group(0) and default is not None:
            return match.group(1), float(default)
    return None


async def slow_loris(plan: Plan) -> list[Row]:
    """Half a request, then nothing: the server should answer (408) or close once its own timeout
    is up, and close soon after an answer."""
    partial = {"header": ("half its headers", b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: slo"),
               "body": ("half its body", b"POST /api/mcp/v2/process HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                        b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"tool_name\": ")}
    targets: dict[str, tuple[float, str]] = {}
    for word in partial:
        setting = read_timeout(word)
        targets[word] = ((LORIS_CAP, "") if setting is None
                         else (setting[1] + 1, f" ({setting[0]} {setting[1]:g} s + 1 s)"))
    waits = {word: LORIS_CAP + 1 if not why else min(target + 15, LORIS_MAX) for word, (target, why) in targets.items()}
    with Server() as server:
        await health(server.port)
        replies = await asyncio.gather(*(exchange(server.port, request, timeout=waits[word], local=source(index))
                                         for index, (word, (_, request)) in enumerate(partial.items())))
    rows = []
    for (word, (name, _)), reply in zip(partial.items(), replies):
        target, why = targets[word]
        answer = f"{reply.status or 'an answer'} after {reply.answered:.1f} s, " if reply.answered else ""
        figure = answer + (f"closed after {reply.took:.1f} s" if reply.ended
                           else f"still open after {waits[word]:.0f} s")
        acted = reply.answered if reply.answered is not None else reply.took if reply.ended else None
        rows.append(Row(f"slow-loris: a client that sends {name}", figure,
                        f"answered or closed within {target:g} s{why}, closed",
                        reply.ended and acted is not None and acted <= target))
    return rows


# --- the run ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Plan:
    store_runs: int = 150
    stuck_streams: int = 50
    stuck_seconds: float = 8.0
    disconnects: int = 400
    settle: float = 5.0
    shutdown_streams: int = 350
    fd_connections: int = 400
    verbose: bool = False


QUICK = Plan(disconnects=20, settle=2.0)
Attack = Callable[[Plan], Awaitable["Row | list[Row]"]]


class Redis:
    """One redis-server for the whole run, started when a row first needs it; each row gets its own
    database, so runs one server left behind are not another's business."""

    def __init__(self) -> None:
        self.started: tuple[subprocess.Popen[bytes], str] | None = None
        self.tried = False

    def url(self, db: int) -> str | None:
        if not self.tried:
            self.tried = True
            self.started = start_redis()
        return None if self.started is None else f"{self.started[1].rsplit('/', 1)[0]}/{db}"

    def close(self) -> None:
        if self.started is not None:
            self.started[0].terminate()
            self.started[0].wait(timeout=10)


def attacks(redis: Redis) -> dict[str, Attack]:
    def both_stores(row: Callable[[Plan, str, str], Awaitable[Row]], db: int) -> Attack:
        async def run(plan: Plan) -> list[Row]:
            rows = [await row(plan, "memory", "memory store")]
            url = redis.url(db)
            if url is not None:
                rows.append(await row(plan, url, "Redis store"))
            return rows
        return run

    return {"latency": latency_rows, "store": store_detached, "stuck-runs": store_stuck_streams,
            "test-stream": test_stream_stuck, "disconnects": both_stores(early_disconnects, 1),
            "fuzz": both_stores(fuzz, 2), "shutdown": shutdown, "fd-limit": fd_limit, "slow-loris": slow_loris}


def table(rows: list[Row]) -> str:
    lines = ["| attack | figure | target | verdict |", "|---|---|---|---|"]
    lines += [f"| {row.attack} | {row.figure} | {row.target} | {'PASS' if row.ok else 'FAIL'} |" for row in rows]
    return "\n".join(lines)


def main() -> None:
    redis = Redis()
    every = attacks(redis)
    parser = argparse.ArgumentParser(prog="python -m bench.stress", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", choices=list(every), help="run only these attacks")
    parser.add_argument("--quick", action="store_true",
                        help="one small attack (20 early closes, memory store): a smoke run in seconds")
    parser.add_argument("--verbose", action="store_true",
                        help="also print the fuzz requests that failed, and the server's log during fuzz and fd-limit")
    args = parser.parse_args()
    pin(1)
    raise_fd_limit()
    started = time.monotonic()
    chosen: dict[str, Attack] = (
        {"disconnects": lambda plan: early_disconnects(plan, "memory", "memory store")} if args.quick
        else {name: every[name] for name in args.only or every})
    plan = dataclasses.replace(QUICK if args.quick else Plan(), verbose=args.verbose)
    detected = ", ".join(f"{flag} {'yes' if has_flag(flag) else 'no'}" for flag in ("--queue-bytes", "--max-streams"))
    print(f"Measured {datetime.date.today().isoformat()} on {machine()}; server flags: {detected}", flush=True)
    rows: list[Row] = []
    try:
        for name, attack in chosen.items():
            print(f"attacking: {name} ...", file=sys.stderr, flush=True)
            try:
                result = asyncio.run(asyncio.wait_for(attack(plan), 120))
            except Exception as exc:  # a row that says what broke beats a harness that stops
                result = Row(name, f"harness error: {type(exc).__name__}: {exc}"[:200], "-", False)
            rows += result if isinstance(result, list) else [result]
    finally:
        redis.close()
    print(table(rows))
    if redis.tried and redis.started is None:
        print("(redis-server is not installed: the Redis rows were left out)")
    print(f"elapsed {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
