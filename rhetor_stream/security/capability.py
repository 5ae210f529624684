"""Run capabilities: a signed, expiring token that lets its holder read one run's events.

`EventSource` cannot send an `Authorization` header, so the events URL a client gets when it starts a
run carries `?token=<expires>.<signature>`: an HMAC-SHA256 over the run id and the expiry time under
a server secret. Any process that knows the secret accepts it, without storing anything per token.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable


class Capabilities:
    def __init__(self, secret: bytes, ttl: float, *, clock: Callable[[], float] = time.time) -> None:
        if not secret:
            raise ValueError("a capability secret must not be empty")
        self._secret = secret
        self._ttl = ttl
        self._clock = clock

    def issue(self, run_id: str) -> str:
        expires = int(self._clock() + self._ttl)
        return f"{expires}.{self._sign(run_id, expires)}"

    def problem(self, run_id: str, token: str) -> str | None:
        """Why `token` does not open `run_id`'s events, or None when it does."""
        raw_expires, _, signature = token.partition(".")
        # ASCII digits only, and no more than a time can have: `int()` refuses '²' and 5,000 digits.
        if not (raw_expires.isascii() and raw_expires.isdigit() and len(raw_expires) <= 16) or not signature:
            return "the run token is malformed"
        expires = int(raw_expires)
        if not hmac.compare_digest(signature.encode(), self._sign(run_id, expires).encode()):
            return "the run token is not valid for this run"
        if expires < self._clock():
            return "the run token has expired; ask for the run's status (with your key) for a fresh events_url"
        return None

    def _sign(self, run_id: str, expires: int) -> str:
        mac = hmac.new(self._secret, f"{run_id}\n{expires}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()
