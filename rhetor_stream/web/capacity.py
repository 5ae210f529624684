"""How many streams the server takes on, in all and per client address, and the polite refusal past it.

Every open stream holds a socket (and a tool that calls an LLM, a second one). A server that accepts
streams until the process runs out of file descriptors can no longer accept anything, not even
`/health`: new clients hang, and Python 3.11's accept loop turns EMFILE into a storm of log lines.
So streams are counted, and past `--max-streams` (derived from the open-file limit, leaving half
of it for upstream connections, `/health` and the refusals themselves) or `--max-streams-per-client`
a request is refused at once with 503, `Retry-After` and a JSON body, before any run starts or any
body is read. The refusal closes its connection so it does not hold a descriptor.
"""
from __future__ import annotations

import logging
import resource
import time
from typing import Any

import attrs
from aiohttp import web

from rhetor_stream.settings import Settings
from rhetor_stream.web.errors import ApiError

log = logging.getLogger("rhetor_stream.capacity")

# Descriptors kept out of the derived limit for everything that is not a stream: the listening
# socket, event store and upstream pools, log files, and the connections that are refused.
FD_RESERVE = 128
# The derived limit never goes above this: ~20 KiB per open run stream makes it ~200 MiB.
DERIVED_MAX_STREAMS = 10_000


def open_file_limit() -> int | None:
    """The soft RLIMIT_NOFILE, or None when it is unlimited."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return None if soft == resource.RLIM_INFINITY else soft


def raise_open_file_limit() -> None:
    """Raise the soft open-file limit to the hard one: the default soft limit (often 1024) is a
    compatibility value for select(); asyncio uses epoll and needs no such ceiling."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):  # e.g. an unlimited hard limit the kernel will not grant
            pass


def derived_max_streams(fd_limit: int | None) -> int:
    """Half of what the reserve leaves, since a stream may hold a second descriptor upstream."""
    if fd_limit is None:
        return DERIVED_MAX_STREAMS
    return max(1, min(DERIVED_MAX_STREAMS, (fd_limit - FD_RESERVE) // 2))


class QuietLog:
    """At most one warning per `every` seconds, saying how many times it happened meanwhile."""

    def __init__(self, logger: logging.Logger, every: float = 10.0) -> None:
        self._logger = logger
        self._every = every
        self._last = -every
        self._count = 0

    def warning(self, message: str, *args: Any) -> None:
        self._count += 1
        now = time.monotonic()
        if now - self._last >= self._every:
            self._logger.warning(message + " (%d time(s) in the last %.0f s)", *args, self._count,
                                 min(now - self._last, self._every))
            self._last = now
            self._count = 0


@attrs.define(eq=False)
class Slot:
    """One stream's place; releasing it twice is harmless, and `keep` hands it to a detached run."""

    _capacity: Capacity
    client: str
    held: bool = True
    kept: bool = False

    def keep(self) -> None:
        """The request's answer does not end its use: whoever holds the slot releases it later."""
        self.kept = True

    def release(self) -> None:
        if self.held:
            self.held = False
            self._capacity.release(self.client)


class Capacity:
    """The counts behind `--max-streams` and `--max-streams-per-client`."""

    def __init__(self, max_streams: int, per_client: int, *, retry_after: int) -> None:
        self.max_streams = max_streams
        self.per_client = per_client
        self.retry_after = retry_after
        self.in_use = 0
        self._clients: dict[str, int] = {}
        self._refusals = QuietLog(log)

    @classmethod
    def from_settings(cls, settings: Settings) -> Capacity:
        total = settings.max_streams or derived_max_streams(open_file_limit())
        per_client = settings.max_streams_per_client or max(1, total // 4)
        return cls(total, min(per_client, total), retry_after=max(1, round(settings.retry_ms / 1000)))

    def take(self, client: str) -> Slot:
        """A slot, or the 503 that refuses the request (ApiError)."""
        if self.in_use >= self.max_streams:
            self._refusals.warning("refusing streams: all %d are in use", self.max_streams)
            raise self._refusal("server_busy", f"the server is serving its limit of {self.max_streams} "
                                f"streams; try again in {self.retry_after} s", self.max_streams)
        if self._clients.get(client, 0) >= self.per_client:
            self._refusals.warning("refusing streams of %s: it holds its limit of %d", client, self.per_client)
            raise self._refusal("client_busy", f"this client already holds its limit of {self.per_client} "
                                f"streams; close one or try again in {self.retry_after} s", self.per_client)
        self.in_use += 1
        self._clients[client] = self._clients.get(client, 0) + 1
        return Slot(self, client)

    def release(self, client: str) -> None:
        self.in_use -= 1
        left = self._clients[client] - 1
        if left:
            self._clients[client] = left
        else:
            del self._clients[client]

    def _refusal(self, code: str, message: str, limit: int) -> ApiError:
        # close: a refused client should not keep a descriptor with keep-alive
        return ApiError(503, code, message, headers={"Retry-After": str(self.retry_after)}, close=True,
                        limit=limit, retry_after=self.retry_after)


SLOT = web.RequestKey("rhetor_stream slot", Slot)
CAPACITY = web.AppKey("rhetor_stream capacity", Capacity)
