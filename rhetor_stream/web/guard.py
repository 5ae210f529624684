"""The security checks every request passes before a handler runs (see SECURITY.md).

In order: the `Host` header (421, DNS rebinding) and the `Origin` header (403, other web pages), then
the API key on `/api/...` and `/mcp` (401; a run's events also open with the run token of its events
URL, since `EventSource` cannot send headers), then the per-key limits on requests that start work
(429). All of it happens before any tool runs or any byte of a stream is sent.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import attrs
from aiohttp import hdrs, web

from rhetor_stream.runs.manager import LocalRun
from rhetor_stream.security.capability import Capabilities
from rhetor_stream.security.hosts import HostPolicy
from rhetor_stream.security.keys import KeyRing, bearer_token
from rhetor_stream.security.limits import ANONYMOUS, KeyLimiter, Refusal, Slot
from rhetor_stream.settings import Settings
from rhetor_stream.tools.registry import Tool
from rhetor_stream.web.errors import ApiError
from rhetor_stream.web.state import STATE

log = logging.getLogger("rhetor_stream.security")

_SLOT = web.RequestKey("rhetor_stream_slot", Slot)
_IDENTITY = web.RequestKey("rhetor_stream_key", str)  # the id of a valid key (never the key)


@attrs.define(eq=False)
class Guard:
    keys: KeyRing
    hosts: HostPolicy
    limiter: KeyLimiter
    capability_secret: bytes
    capability_ttl: float
    capabilities: Capabilities | None = None  # set at start, once the secret is known

    @classmethod
    def from_settings(cls, settings: Settings) -> Guard:
        return cls(keys=KeyRing.load(settings.api_key, settings.api_key_file),
                   hosts=HostPolicy.build(settings.host, settings.allowed_host, settings.cors_origin),
                   limiter=KeyLimiter(concurrent=settings.key_max_concurrent_runs,
                                      per_minute=settings.key_max_runs_per_minute,
                                      max_tokens=settings.key_max_tokens),
                   capability_secret=settings.capability_secret.encode(),
                   capability_ttl=settings.capability_ttl)


GUARD = web.AppKey("rhetor_stream_guard", Guard)


def setup(app: web.Application, settings: Settings) -> None:
    """Read the keys now (a bad key file stops start-up with a clear message); at start, settle the
    secret that signs run tokens (the setting, else one shared through the event store)."""
    guard = Guard.from_settings(settings)
    app[GUARD] = guard
    if settings.exposed:
        log.warning("serving %s without an API key (--allow-unauthenticated): anyone who can reach the "
                    "port can run tools and spend the LLM budget", settings.host)

    async def settle_secret(app: web.Application) -> None:
        secret = guard.capability_secret or await app[STATE].runs.store.shared_secret()
        guard.capabilities = Capabilities(secret, guard.capability_ttl)

    app.on_startup.append(settle_secret)


def check_request(request: web.Request) -> None:
    """The checks before any handler: Host, Origin, the API key, and the key's limits on a request
    that starts work; each refusal is an ApiError. A run's place under those limits taken here is
    given back by `release_run_slot` when the request ends (unless the run took it over)."""
    guard = request.app[GUARD]
    host = request.headers.get(hdrs.HOST)
    problem = guard.hosts.host_problem(host)
    if problem is not None:
        raise ApiError(421, "host_not_allowed", problem)
    problem = guard.hosts.origin_problem(request.headers.get(hdrs.ORIGIN), host)
    if problem is not None:
        raise ApiError(403, "origin_not_allowed", problem)
    identity = _identify(request, guard)
    if identity is not None:
        request[_IDENTITY] = identity
    # A POST to the REST API starts work; on /mcp only a tools/call does, and the MCP transport asks
    # for the slot itself (a ping or a cancellation must pass while the key is at its limit).
    if request.method == "POST" and request.path.startswith("/api/"):
        refusal = admit_run(request)
        if refusal is not None:
            retry_after: dict[str, str] = {} if refusal.retry_after is None else {
                hdrs.RETRY_AFTER: str(refusal.retry_after)}
            raise ApiError(429, "rate_limited", refusal.message, headers=retry_after, limit=refusal.limit)


def release_run_slot(request: web.Request) -> None:
    """The request is over: the place `check_request` (or `admit_run`) took for it goes back, unless
    a run took it over (`hold_slot`): /process, or a request that failed."""
    slot = _take_slot(request)
    if slot is not None:
        slot.release()


def admit_run(request: web.Request) -> Refusal | None:
    """Count a run this request is about to start against its key's limits, or say which limit
    refuses it. The slot is released when the request ends, unless `hold_slot` hands it to the run."""
    guard = request.app[GUARD]
    if not guard.limiter.counts_runs or _SLOT in request:
        return None
    admitted = guard.limiter.admit(request.get(_IDENTITY) or ANONYMOUS)
    if isinstance(admitted, Refusal):
        return admitted
    request[_SLOT] = admitted
    return None


def _identify(request: web.Request, guard: Guard) -> str | None:
    """The caller's key id (None without keys, or without a key where none is needed); raises the 401."""
    if not guard.keys.enabled:
        return None
    presented = bearer_token(request.headers.get(hdrs.AUTHORIZATION))
    identity = guard.keys.identify(presented) if presented else None
    if identity is not None or not _protected(request) or request.method == hdrs.METH_OPTIONS:
        return identity  # CORS preflights carry no credentials by design
    if presented:
        raise _unauthorized("invalid_api_key", "the API key is not valid", error="invalid_token")
    token = request.query.get("token")
    run_id = request.match_info.get("run_id")
    if token and run_id and request.method == hdrs.METH_GET and request.path.endswith("/events"):
        assert guard.capabilities is not None
        problem = guard.capabilities.problem(run_id, token)
        if problem is None:
            return f"run-{run_id}"
        raise _unauthorized("invalid_run_token", problem, error="invalid_token")
    raise _unauthorized("missing_api_key", "this server needs an API key: send 'Authorization: Bearer KEY'")


def _protected(request: web.Request) -> bool:
    path = request.path
    return path.startswith("/api/") or path == "/mcp" or path.startswith("/mcp/")


def _unauthorized(code: str, message: str, *, error: str | None = None) -> ApiError:
    challenge = 'Bearer realm="rhetor_stream"' + (f', error="{error}"' if error else "")
    return ApiError(401, code, message, headers={hdrs.WWW_AUTHENTICATE: challenge})


def authenticated(request: web.Request) -> bool:
    """True when the API is open, or the request carried a valid key (for what /health may say)."""
    return not request.app[GUARD].keys.enabled or request.get(_IDENTITY) is not None


def with_run_token(request: web.Request, path: str, run_id: str) -> str:
    """A run's events URL; with keys, it carries the run token an `EventSource` needs."""
    guard = request.app[GUARD]
    if not guard.keys.enabled:
        return path
    assert guard.capabilities is not None
    return f"{path}?token={guard.capabilities.issue(run_id)}"


def hold_slot(request: web.Request, run: LocalRun) -> None:
    """The run started by this request counts against its key's limits until it ends."""
    slot = _take_slot(request)
    if slot is not None:
        run.when_done(slot.release)


def _take_slot(request: web.Request) -> Slot | None:
    """The request's slot, no longer on it. The request's state is looked at only when it holds
    anything: a request is a Mapping whose `pop` of an absent key raises and catches a KeyError,
    microseconds twice per request (before a stream's first event) when there are no key limits."""
    return request.pop(_SLOT, None) if len(request) else None


def check_token_budget(request: web.Request, tool: Tool, arguments: Mapping[str, Any]) -> None:
    """429 before the run when one call may use more LLM tokens than `--key-max-tokens`."""
    if tool.token_budget is None:
        return
    refusal = request.app[GUARD].limiter.token_refusal(tool.token_budget(arguments, request.app))
    if refusal is not None:
        raise ApiError(429, "rate_limited", refusal.message, limit=refusal.limit, tool_name=tool.name)
