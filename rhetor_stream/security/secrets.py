"""Secrets never leave: scrubbing of keys and credentials from text bound for a client or a log.

Upstream error text is worth keeping (it says what the upstream did not like), but an upstream may
echo what it was sent: OpenAI's 401 quotes the key it refused, proxies repeat the `Authorization`
header, and error pages show the URL with its credentials. Everything an upstream says therefore
goes through a `Scrubber` before it becomes an event, a JSON error or a log line. It removes

- the configured secrets, and every suffix of them longer than 4 characters (APIs that mask a key
  show its end, and text cut to a length may keep any tail of it); 4 characters are what OpenAI
  itself shows of a key and say nothing useful;
- bearer and basic credentials (`Authorization: Bearer ...`), whoever's they are;
- `sk-...` style keys (OpenAI, Anthropic, LiteLLM and others use that shape);
- credentials in URLs (`https://user:password@host`).

This module depends on the standard library only, so any layer may use it.
"""
from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Iterator
from urllib.parse import unquote, urlsplit, urlunsplit

REDACTED = "***"
# A secret's tail shorter than this may stay: it identifies nothing (OpenAI shows 4 characters).
SHOWN_TAIL = 4
# An upstream credential (an API key, a URL password) shorter than this is not scrubbed as a
# literal, or every short word it happens to equal would be; it is refused nowhere, only not matched.
_MIN_LITERAL = SHOWN_TAIL + 1

_PATTERNS = (
    # Authorization schemes with their credentials, as in a header echoed back.
    (re.compile(r"\b(Bearer|Basic)(\s+)[A-Za-z0-9._~+/=-]{8,}", re.IGNORECASE), rf"\1\2{REDACTED}"),
    # sk-... keys: sk-proj-..., sk-ant-api03-..., LiteLLM's sk-... virtual keys.
    (re.compile(r"\bsk-[A-Za-z0-9_-]{8,}"), f"sk-{REDACTED}"),
    # scheme://user:password@ or scheme://token@: the userinfo of any URL.
    (re.compile(r"\b([A-Za-z][A-Za-z0-9+.-]*://)[^\s/?#@\"'<>]+@"), rf"\1{REDACTED}@"),
)


class Scrubber:
    """Removes known secrets, and anything shaped like a credential, from text.

    Built once with every secret the process holds; calling it costs time linear in the text, so it
    can sit on every path where foreign text leaves the process."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets = tuple({secret for secret in secrets if len(secret) >= _MIN_LITERAL})

    def __call__(self, text: str) -> str:
        merged: list[list[int]] = []  # overlapping or touching spans become one
        for start, end in sorted(span for secret in self._secrets for span in _tails(text, secret)):
            if merged and start <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], end)
            else:
                merged.append([start, end])
        if merged:
            parts, done = [], 0
            for start, end in merged:
                parts += [text[done:start], REDACTED]
                done = end
            text = "".join(parts) + text[done:]
        for pattern, replacement in _PATTERNS:
            text = pattern.sub(replacement, text)
        return text


def _tails(text: str, secret: str) -> Iterator[tuple[int, int]]:
    """The spans of `text` that are a suffix of `secret` longer than SHOWN_TAIL characters.

    Every such suffix ends with the secret's last SHOWN_TAIL + 1 characters, so: find those, then
    extend each match backwards as far as the text goes on agreeing with the secret."""
    tail = secret[-_MIN_LITERAL:]
    found = text.find(tail)
    while found != -1:
        start, known = found, len(secret) - len(tail)
        while known and start and text[start - 1] == secret[known - 1]:
            start, known = start - 1, known - 1
        yield start, found + len(tail)
        found = text.find(tail, found + 1)


def url_credentials(url: str) -> tuple[str, str] | None:
    """The `(user, password)` in a URL's userinfo, percent-decoded (the password may be empty), or None."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return None
    return unquote(parts.username or ""), unquote(parts.password or "")


def public_url(url: str) -> str:
    """The URL without its userinfo: what a message or a log may show of it."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def basic_token(user: str, password: str) -> str:
    """The credentials of `Authorization: Basic <token>`."""
    return base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


def credential_secrets(user: str, password: str) -> tuple[str, ...]:
    """What must never be shown of URL credentials: the password, and the Basic token that carries it."""
    return tuple(secret for secret in (password, basic_token(user, password)) if secret)
