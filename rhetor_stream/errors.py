"""The one error vocabulary: everything the server reports on purpose is a `RhetorError`.

Each error carries a stable `code` (what clients branch on), a `message` a person can act on, optional
`details` (extra fields such as the offending `argument`, or the partial answer of a model stream cut
short) and the HTTP `status` it maps to. Where it is raised decides nothing about how it travels:
before a stream starts, `web.errors.error_answer` turns it into a JSON error with that status;
once a stream runs, `stream.frames.error_frames` turns it into the final `error` and `disconnect`
events. Both write the same fields, so a client reads one shape either way.

The families, each in the module of its layer (their names and import paths are public):
`tools.ToolError` (a tool failing on purpose) and `tools.ArgumentError` (arguments that do not fit),
`providers.UpstreamError` (an LLM provider failed), `runs.store.StoreUnavailable` (the event store is
away; `StoreMisconfigured` when it refuses our credentials, which waiting does not fix),
`runs.store.EventsExpired` (a subscriber fell behind the store's bound), and `web.errors.ApiError`
(a request refused by a handler).

No imports from the project: every layer may raise one, so this module sits below all of them.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class RhetorError(Exception):
    """An error with a stable code, a message for people, optional details and its HTTP status.

    Subclasses set `code` and `status` as class defaults; an instance may override either. `advice`
    (what the client can do about it, such as "try again shortly") follows the message on the wire
    but not in the log, where it would only be noise.
    """

    code: str = "internal_error"
    status: int = 500
    advice: str = ""

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None,
                 details: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.details: dict[str, Any] = dict(details or {})

    @property
    def public_message(self) -> str:
        """The message as a client reads it: with the advice, when there is one."""
        return f"{self.message}; {self.advice}" if self.advice else self.message
