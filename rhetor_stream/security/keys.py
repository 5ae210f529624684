"""API keys: who may call the API.

Only SHA-256 digests of the keys are kept, so a key file may hold hashes instead of keys (it can then
live in config management without giving anyone access). A presented key is hashed and compared
with every digest using `hmac.compare_digest`, so the time taken says nothing about how much of a
key was right, or which key it matched.
"""
from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from pathlib import Path

import attrs

HASH_PREFIX = "sha256:"


class KeyFileError(RuntimeError):
    """The key file cannot be used; the message names the file and line (never a key)."""


def digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


@attrs.frozen
class KeyRing:
    """The accepted keys, as digests. Empty: the API is open."""

    digests: tuple[bytes, ...] = ()

    @classmethod
    def load(cls, keys: Iterable[str], file: Path | None = None) -> KeyRing:
        found = [digest(key) for key in keys]
        if file is not None:
            found.extend(read_key_file(file))
        return cls(tuple(dict.fromkeys(found)))

    @property
    def enabled(self) -> bool:
        return bool(self.digests)

    def identify(self, presented: str) -> str | None:
        """A short, non-secret id of the key `presented` matches (for limits and logs), or None."""
        candidate = digest(presented)
        match = None
        for known in self.digests:  # no early exit: every key is compared, matching or not
            if hmac.compare_digest(candidate, known):
                match = known
        return None if match is None else "key-" + match.hex()[:8]


def read_key_file(path: Path) -> list[bytes]:
    """Digests from a file of keys or `sha256:<64 hex digits>` hashes, one per line.

    A hash needs its prefix: `openssl rand -hex 32` makes keys that look exactly like a bare hash.
    """
    try:
        text = path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise KeyFileError(f"cannot read the API key file {path}: {reason}") from None
    digests = []
    for number, line in enumerate(text.splitlines(), start=1):
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        if entry.lower().startswith(HASH_PREFIX):
            hexdigits = entry[len(HASH_PREFIX):]
            try:
                value = bytes.fromhex(hexdigits)
            except ValueError:
                value = b""
            if len(value) != hashlib.sha256().digest_size:
                raise KeyFileError(f"{path}, line {number}: a hash must be 'sha256:' and 64 hex digits")
            digests.append(value)
        elif not entry.isascii() or not entry.isprintable() or " " in entry:
            raise KeyFileError(f"{path}, line {number}: a key must be visible ASCII characters without spaces")
        else:
            digests.append(digest(entry))
    if not digests:
        raise KeyFileError(f"the API key file {path} holds no key (one key or sha256:HEX hash per line)")
    return digests


def bearer_token(authorization: str | None) -> str | None:
    """The credentials of an `Authorization: Bearer <token>` header (the scheme is case-insensitive)."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None
