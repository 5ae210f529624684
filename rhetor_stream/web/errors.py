"""Errors before a stream starts are plain JSON with an honest status; tracebacks stay in the log.

Every error body has the same shape, `{"error": "<what went wrong>", "code": "<stable code>"}` plus
context such as the offending `argument`, the same keys an `error` event carries once a stream runs:
any `RhetorError` (see `rhetor_stream.errors`) a handler raises is answered by `http_error`.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import orjson
from aiohttp import hdrs, web
from aiohttp.http_exceptions import HttpProcessingError

from rhetor_stream.errors import RhetorError

log = logging.getLogger("rhetor_stream.web")

_SUMMARY_CHARS = 200


def malformed_request(exc: BaseException) -> str | None:
    """What is wrong with a request aiohttp could not parse (its line, headers, or body framing and
    encoding: bad gzip, broken chunks), in one line; None when `exc` is not that."""
    if isinstance(exc, web.RequestPayloadError) and isinstance(exc.__cause__, HttpProcessingError):
        exc = exc.__cause__
    if isinstance(exc, HttpProcessingError):
        return " ".join(str(exc.message).split())[:_SUMMARY_CHARS]
    if isinstance(exc, web.RequestPayloadError):
        return " ".join(str(exc).split())[:_SUMMARY_CHARS]
    return None


class ServerLog(logging.LoggerAdapter[logging.Logger]):
    """The logger aiohttp's request handler writes to (`handler_args={"logger": ...}`).

    aiohttp answers a request it cannot parse (a bad request line, an oversized header, broken
    chunked framing) with a 400 by itself, and then logs it at ERROR with a full traceback; a body
    it cannot decode fails again, with a traceback, when it drains the rest after our answer. Those
    are the client's mistakes, anyone on the network can make them, so each becomes one line here,
    at INFO (or DEBUG, where aiohttp chose that). Everything else aiohttp reports this way (an
    exception that escaped a handler) keeps its level and traceback.
    """

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        problem = kwargs.get("exc_info")
        summary = malformed_request(problem) if isinstance(problem, BaseException) else None
        if summary is not None:
            del kwargs["exc_info"]
            level, msg, args = min(level, logging.INFO), f"{msg} (malformed request): %s", (*args, summary)
        super().log(level, msg, *args, **kwargs)


class ApiError(RhetorError):
    """A request a handler or the front door refuses: the status and code given here, the context as
    `extra` fields, `headers` of the response's own (`Retry-After`, `WWW-Authenticate`); `close`
    ends the connection after the answer, for a client that should not send another on it."""

    def __init__(self, status: int, code: str, message: str, *, headers: Mapping[str, str] | None = None,
                 close: bool = False, **extra: Any) -> None:
        super().__init__(message, code=code, status=status, details=extra)
        self.headers = dict(headers or {})
        self.close = close


def json_response(data: Any, *, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def error_response(status: int, code: str, message: str, **extra: Any) -> web.Response:
    return json_response({"error": message, "code": code, **extra}, status=status)


_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large",
               415: "unsupported_media_type"}


def http_error(request: web.Request, exc: RhetorError) -> web.Response:
    """The one way an error of the vocabulary becomes an HTTP response (before a stream starts)."""
    response = error_response(exc.status, exc.code, exc.public_message, **exc.details)
    if isinstance(exc, ApiError):  # a refusal its raiser decided on (and logged, when worth it)
        response.headers.update(exc.headers)
        if exc.close:
            response.force_close()
    elif exc.status >= 500:  # a part of the server failed (the store): a line in the log, no traceback
        log.warning("%s %s: %s", request.method, request.path, exc)
    return response


def error_answer(request: web.Request, exc: Exception) -> web.StreamResponse | None:
    """The answer to what a handler (or a check before it) raised, or None for an HTTPException that
    is not an error (a redirect), which goes on as it is."""
    if isinstance(exc, RhetorError):
        return http_error(request, exc)
    if isinstance(exc, web.HTTPException):
        if exc.status < 400:
            return None
        code = _HTTP_CODES.get(exc.status, "http_error")
        message = exc.text if exc.text and not exc.text.startswith(str(exc.status)) else exc.reason
        if exc.status == 404:
            message = f"no such endpoint: {request.method} {request.path}"
        elif exc.status == 405:
            message = f"{request.method} is not allowed on {request.path}"
        answer = error_response(exc.status, code, message)
        if hdrs.ALLOW in exc.headers:  # a 405 says which methods the path has
            answer.headers[hdrs.ALLOW] = exc.headers[hdrs.ALLOW]
        return answer
    if isinstance(exc, ConnectionError):
        # The client left before its response could start (aiohttp's ClientConnectionResetError is
        # one): nobody is left to read an answer, and it is not a server fault worth a traceback.
        log.debug("client of %s %s left before the response started", request.method, request.path)
        return web.Response(status=499, reason="Client Closed Request")
    log.error("unhandled error in %s %s", request.method, request.path, exc_info=exc)
    return error_response(500, "internal_error", "internal server error (see the server log)")
