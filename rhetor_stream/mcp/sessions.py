"""MCP sessions: ids that any server process can check without shared state.

An `Mcp-Session-Id` reads `<nonce>.<protocol version>.<expires>.<signature>`: the signature (the run-token
signer, under the secret every process sharing the event store agrees on) covers the nonce and the
version, so a client resuming through another process is recognised there, and a forged or altered id
is not. What cannot be signed is an early end: `DELETE /mcp` is remembered by the process that got it
(until the id would have expired anyway), which also cancels the session's calls running there.
"""
from __future__ import annotations

import secrets
import time
from collections.abc import Callable

import attrs

from rhetor_stream.mcp.protocol import VERSIONS
from rhetor_stream.security.capability import Capabilities


@attrs.frozen
class Session:
    nonce: str
    version: str


class Sessions:
    def __init__(self, signer: Callable[[], Capabilities], ttl: float, *,
                 clock: Callable[[], float] = time.time) -> None:
        self._signer = signer  # the guard's signer exists only once the app has started
        self._ttl = ttl
        self._clock = clock
        self._ended: dict[str, float] = {}  # nonce -> when its id expires

    def issue(self, version: str) -> tuple[str, Session]:
        session = Session(secrets.token_hex(16), version)
        return f"{session.nonce}.{version}.{self._signer().issue(_subject(session))}", session

    def find(self, session_id: str) -> Session | None:
        """The session this id names, or None when it is unknown, forged, expired or ended."""
        nonce, _, rest = session_id.partition(".")
        version, _, token = rest.partition(".")
        if len(nonce) != 32 or version not in VERSIONS or nonce in self._ended:
            return None
        session = Session(nonce, version)
        return session if self._signer().problem(_subject(session), token) is None else None

    def end(self, session: Session) -> None:
        now = self._clock()
        for nonce in [nonce for nonce, expires in self._ended.items() if expires < now]:
            del self._ended[nonce]  # an expired id is refused by its signature anyway
        self._ended[session.nonce] = now + self._ttl


def _subject(session: Session) -> str:
    return f"mcp-session\n{session.nonce}\n{session.version}"
