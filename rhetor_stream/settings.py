"""Server settings: one validated `attrs` class, filled from CLI flags and `RHETOR_*` variables.

Every field is described once, here, and both `--help` and the environment mapping are derived from
that description, so the flag, its variable and its validation can never drift apart. Precedence is
the usual one: a command-line flag beats its environment variable, which beats the default.
"""
from __future__ import annotations

import argparse
import ipaddress
import logging
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from rhetor_stream.security.secrets import public_url, url_credentials

ENV_PREFIX = "RHETOR_"
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
PROVIDERS = ("simulated", "openai", "anthropic", "ollama")
_BOOLEANS = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False,
             "off": False}


class SettingsError(ValueError):
    """A setting has a value the server cannot run with; the message names the flag and variable."""


def _setting(default: Any, help: str, *, env: Sequence[str] = (), secret: bool = False,
             repeatable: bool = False, **kwargs: Any) -> Any:
    """An attrs field that also carries its CLI help and any extra (non-RHETOR_) variable names."""
    metadata = {"help": help, "env": tuple(env), "secret": secret, "repeatable": repeatable}
    return attrs.field(default=default, metadata=metadata, **kwargs)


def _finite(attribute: attrs.Attribute[Any], value: float) -> None:
    """`nan` passes every comparison (`nan <= 0` is false) and `inf` every lower bound, yet neither
    is a usable number of seconds or bytes: `--send-timeout nan` would switch the timeout off."""
    if isinstance(value, float) and not math.isfinite(value):
        raise SettingsError(f"{_names(attribute)} must be a finite number, got {value!r}")


def _positive(instance: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    _finite(attribute, value)
    if value <= 0:
        raise SettingsError(f"{_names(attribute)} must be greater than 0, got {value!r}")


def _non_negative(instance: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    _finite(attribute, value)
    if value < 0:
        raise SettingsError(f"{_names(attribute)} must be 0 or more, got {value!r}")


def _one_of(choices: Sequence[str]) -> Any:
    def check(instance: Any, attribute: attrs.Attribute[Any], value: str) -> None:
        if value not in choices:
            raise SettingsError(f"{_names(attribute)} must be one of {', '.join(choices)}; got {value!r}")
    return check


def _connections(instance: Any, attribute: attrs.Attribute[Any], value: int) -> None:
    # Three are held for long: the cancel channel, the shared blocking read and the writer's pipeline.
    if value < 4:
        raise SettingsError(f"{_names(attribute)} must be 4 or more, got {value!r}")


def _port(instance: Any, attribute: attrs.Attribute[Any], value: int) -> None:
    if not 0 <= value <= 65535:
        raise SettingsError(f"{_names(attribute)} must be a port number from 0 to 65535, got {value}")


def _event_store(instance: Any, attribute: attrs.Attribute[Any], value: str) -> None:
    if value != "memory" and not value.startswith(("redis://", "rediss://", "unix://")):
        raise SettingsError(f"{_names(attribute)} must be 'memory' or a redis://host:port/db URL, "
                            f"got {value!r}")


def _api_keys(instance: Any, attribute: attrs.Attribute[Any], value: tuple[str, ...]) -> None:
    # A key travels in an `Authorization: Bearer` header: visible ASCII only, no spaces.
    for key in value:
        if not key or not key.isascii() or not key.isprintable() or " " in key:
            raise SettingsError(f"{_names(attribute)}: a key must be visible ASCII characters without spaces")


def _field(name: str) -> attrs.Attribute[Any]:
    field: attrs.Attribute[Any] = getattr(attrs.fields(Settings), name)
    return field


def _names(attribute: attrs.Attribute[Any]) -> str:
    return f"--{attribute.name.replace('_', '-')} ({' or '.join(_env_names(attribute))})"


@attrs.frozen(kw_only=True)
class Settings:
    """Everything the server can be told at start; validated on construction."""

    host: str = _setting("127.0.0.1", "interface to listen on")
    port: int = _setting(8003, "port to listen on; 0 picks a free port and prints it", validator=_port)
    log_level: str = _setting("info", "logging level; debug shows per-stream detail",
                              validator=_one_of(LOG_LEVELS))
    cors_origin: tuple[str, ...] = _setting((), "origin allowed to call the API from a browser "
                                            "(repeatable; comma-separated in the variable)",
                                            repeatable=True, converter=tuple)
    tools: tuple[str, ...] = _setting((), "module (my_package.tools) or .py file whose @mcp_tool functions are "
                                      "served next to the built-ins (repeatable; comma-separated in the "
                                      "variable)", repeatable=True, converter=tuple)
    # Security (see SECURITY.md).
    api_key: tuple[str, ...] = _setting((), "API key clients must send as 'Authorization: Bearer KEY' on "
                                        "/api/... (repeatable; comma-separated in the variable)",
                                        env=("RHETOR_API_KEYS",), secret=True, repeatable=True,
                                        converter=tuple, validator=_api_keys, repr=False)
    api_key_file: Path | None = _setting(None, "file with one API key, or one sha256:HEX hash of a key, "
                                         "per line ('#' starts a comment)",
                                         converter=attrs.converters.optional(Path))
    allowed_host: tuple[str, ...] = _setting((), "Host name accepted besides localhost, 127.0.0.1 and "
                                             "[::1], e.g. behind a reverse proxy; '*' accepts any "
                                             "(repeatable; comma-separated in the variable)",
                                             repeatable=True, converter=tuple)
    allow_unauthenticated: bool = _setting(False, "serve a non-loopback address without any API key "
                                           "(anyone who reaches the port runs tools)")
    capability_secret: str = _setting("", "secret that signs the run tokens in events URLs; unset: one kept "
                                      "in the redis event store (so every process using it agrees), or a "
                                      "random one per process with the memory store", secret=True, repr=False)
    capability_ttl: float = _setting(86400.0, "seconds a run token in an events URL, and an MCP session "
                                     "(Mcp-Session-Id), stay valid",
                                     validator=_positive)
    key_max_concurrent_runs: int = _setting(0, "runs one API key (or, without keys, all clients) may "
                                            "have going at once in a process; 0: no limit",
                                            validator=_non_negative)
    key_max_runs_per_minute: int = _setting(0, "runs one API key may start per minute in a process; "
                                            "0: no limit", validator=_non_negative)
    key_max_tokens: int = _setting(0, "most LLM tokens one request may ask for (a specialist's max_tokens; "
                                   "a team chat's rounds x specialists); 0: no limit",
                                   validator=_non_negative)
    # Stream machinery limits.
    max_body_bytes: int = _setting(1024 * 1024, "largest accepted request body in bytes", validator=_positive)
    queue_size: int = _setting(256, "events a tool may get ahead of its client before it waits for it",
                               validator=_positive)
    queue_bytes: int = _setting(1024 * 1024, "the largest single write to a client; also the bytes the test "
                                "stream's queue holds", validator=_positive)
    send_timeout: float = _setting(30.0, "seconds a client may stop reading before it is dropped",
                                   validator=_positive)
    heartbeat: float = _setting(15.0, "seconds without an event before a ': ping' comment; 0 disables it",
                                validator=_non_negative)
    progress_interval: float = _setting(0.1, "minimum seconds between two progress events of a stream",
                                        validator=_non_negative)
    processing_tick: float = _setting(1.0, "seconds between 'processing' progress events of plain tools",
                                      validator=_positive)
    retry_ms: int = _setting(3000, "reconnect delay hint sent to clients in the first frame (ms)",
                             validator=_non_negative)
    disconnect_poll: float = _setting(0.05, "seconds between checks for vanished or stalled clients",
                                      validator=_positive)
    shutdown_timeout: float = _setting(4.0, "seconds open streams get to end on SIGINT/SIGTERM",
                                       validator=_positive)
    # Capacity and slow clients.
    max_streams: int = _setting(0, "open streams, /process calls and detached runs served at once; "
                                "past it new ones get 503 with Retry-After. 0 derives it from the "
                                "open-file limit (half of it less a reserve, at most 10000)",
                                validator=_non_negative)
    max_streams_per_client: int = _setting(0, "the same limit per client address (peers behind one "
                                           "proxy share it); 0 means a quarter of --max-streams",
                                           validator=_non_negative)
    listen_backlog: int = _setting(1024, "connections the kernel queues until the server accepts them; "
                                   "a burst past it waits a second or more for its SYN to be retried "
                                   "(capped by net.core.somaxconn)", validator=_positive)
    keepalive_timeout: float = _setting(15.0, "seconds a connection may stay idle between requests, "
                                        "or take to send a request's headers, before it is closed",
                                        validator=_positive)
    body_timeout: float = _setting(30.0, "seconds a client may take to send a request body before it "
                                   "gets 408 and the connection is closed", validator=_positive)
    # Runs and scale-out.
    event_store: str = _setting("memory", "where run events live: 'memory' (one process) or a "
                                "redis://host:port/db URL (shared by processes)", validator=_event_store)
    run_retention: float = _setting(300.0, "seconds a finished run's events stay available for replay",
                                    validator=_positive)
    run_max_events: int = _setting(10_000, "events kept per run (past it, the oldest are dropped in blocks "
                                   "of a sixteenth)", validator=_positive)
    run_max_bytes: int = _setting(16 * 1024 * 1024, "bytes of event data kept per run in memory",
                                  validator=_positive)
    run_store_max_bytes: int = _setting(256 * 1024 * 1024, "bytes of event data the memory store keeps "
                                        "in all; beyond it the oldest finished runs are forgotten early",
                                        validator=_positive)
    event_store_buffer_bytes: int = _setting(32 * 1024 * 1024, "bytes of run events a process holds for "
                                             "the redis event store: those not written yet (while Redis "
                                             "is away) and a tail of written ones (to write again what a "
                                             "restarted Redis lost); a run that would go past it while "
                                             "Redis is away ends with event_store_unavailable",
                                             validator=_positive)
    event_store_connections: int = _setting(32, "connections to the redis event store a process opens at "
                                            "most (4 or more); a command beyond them waits for a free one",
                                            validator=_connections)
    run_owner_lease: float = _setting(15.0, "seconds a process may stop renewing its lease in the shared "
                                      "store before others end its running runs as lost",
                                      validator=_positive)
    mcp_resume_grace: float = _setting(60.0, "seconds a tools/call over /mcp waits for its client to come "
                                       "back (GET /mcp with Last-Event-ID) after a disconnect before it is "
                                       "cancelled; 0 cancels at once", validator=_non_negative)
    workers: int = _setting(1, "server processes sharing the port (needs a redis event store)",
                            validator=_positive)
    # AI specialists and LLM providers.
    provider: str = _setting("simulated", "default LLM provider of specialists that name none",
                             validator=_one_of(PROVIDERS))
    specialists: Path | None = _setting(None, "TOML or JSON file with the specialist roster "
                                        "(replaces the built-in one)",
                                        converter=attrs.converters.optional(Path))
    simulated_tokens_per_s: float = _setting(40.0, "pacing of the offline simulated provider",
                                             validator=_positive)
    openai_base_url: str = _setting("https://api.openai.com/v1", "OpenAI-compatible API base URL",
                                    env=("OPENAI_BASE_URL",))
    openai_api_key: str = _setting("", "API key for the OpenAI-compatible provider",
                                   env=("OPENAI_API_KEY",), secret=True, repr=False)
    anthropic_base_url: str = _setting("https://api.anthropic.com", "Anthropic API base URL",
                                       env=("ANTHROPIC_BASE_URL",))
    anthropic_api_key: str = _setting("", "API key for Anthropic", env=("ANTHROPIC_API_KEY",),
                                      secret=True, repr=False)
    ollama_host: str = _setting("http://127.0.0.1:11434", "Ollama server URL", env=("OLLAMA_HOST",))
    upstream_connect_timeout: float = _setting(10.0, "seconds to connect to an LLM provider",
                                               validator=_positive)
    upstream_read_timeout: float = _setting(60.0, "seconds an LLM provider may take to answer, and a stream "
                                            "may stay silent",
                                            validator=_positive)
    upstream_retries: int = _setting(2, "retries of an LLM request that could not connect (a request that "
                                     "was sent is never sent again)", validator=_non_negative)
    specialist_timeout: float = _setting(120.0, "seconds one specialist may take for a team-chat turn",
                                         validator=_positive)

    def __attrs_post_init__(self) -> None:
        if not (self.api_key or self.api_key_file or self.allow_unauthenticated or is_loopback(self.host)):
            raise SettingsError(
                f"--host {self.host} serves other machines, but no --api-key or --api-key-file is set: "
                "anyone who reaches the port could run tools; set a key, or --allow-unauthenticated "
                "if that is on purpose")
        if self.workers > 1 and self.event_store == "memory":
            raise SettingsError(
                "--workers above 1 needs --event-store redis://...: with the memory store each process "
                "knows only its own runs, so a client resuming or cancelling through another process "
                "would find nothing")
        for url_field, key_field in (("openai_base_url", "openai_api_key"),
                                     ("anthropic_base_url", "anthropic_api_key")):
            url = getattr(self, url_field)
            if getattr(self, key_field) and url_credentials(url) is not None:
                raise SettingsError(
                    f"{_names(_field(url_field))} has credentials in it ({public_url(url)} with user:password@) "
                    f"and {_names(_field(key_field))} is set too: an upstream takes one or the other; "
                    "drop the credentials from the URL, or unset the key to send them as Basic auth")

    @property
    def exposed(self) -> bool:
        """Serving other machines without a key (on purpose: --allow-unauthenticated)."""
        return not (self.api_key or self.api_key_file or is_loopback(self.host))

    @property
    def log_level_number(self) -> int:
        number: int = logging.getLevelName(self.log_level.upper())
        return number

    @classmethod
    def from_sources(cls, argv: Sequence[str] | None = None,
                     environ: Mapping[str, str] | None = None) -> Settings:
        """Parse flags over variables over defaults; raise SettingsError on any bad value."""
        environ = os.environ if environ is None else environ
        parser = build_parser()
        args = vars(parser.parse_args(argv))
        values: dict[str, Any] = {}
        for field in attrs.fields(cls):
            if args.get(field.name) is not None:
                values[field.name] = args[field.name]
                continue
            raw = _from_env(field, environ)
            if raw is not None:
                values[field.name] = _convert(field, raw)
        try:
            return cls(**values)
        except (TypeError, ValueError) as exc:
            raise SettingsError(str(exc)) from None


def is_loopback(host: str) -> bool:
    """True for an address only this machine can reach (a bind address or a Host name)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _env_names(field: attrs.Attribute[Any]) -> tuple[str, ...]:
    return (ENV_PREFIX + field.name.upper(), *field.metadata.get("env", ()))


def _from_env(field: attrs.Attribute[Any], environ: Mapping[str, str]) -> str | None:
    for name in _env_names(field):
        if environ.get(name):
            return environ[name]
    return None


def _convert(field: attrs.Attribute[Any], raw: str) -> Any:
    """Turn a variable's text into the field's type, with an error naming the variable."""
    kind = _kind(field)
    if kind is bool:
        if raw.strip().lower() not in _BOOLEANS:
            raise SettingsError(f"{_env_names(field)[0]} must be true or false, got {raw!r}")
        return _BOOLEANS[raw.strip().lower()]
    if kind is tuple:
        return tuple(part.strip() for part in raw.split(",") if part.strip())
    if kind in (int, float):
        try:
            return kind(raw)
        except ValueError:
            raise SettingsError(f"{_env_names(field)[0]} must be a number, got {raw!r}") from None
    return raw


def _kind(field: attrs.Attribute[Any]) -> type:
    annotation = str(field.type)
    for name, kind in (("tuple", tuple), ("int", int), ("float", float), ("bool", bool)):
        if annotation.startswith(name):
            return kind
    return str


def build_parser() -> argparse.ArgumentParser:
    """The `python -m rhetor_stream` argument parser, derived from the Settings fields."""
    parser = argparse.ArgumentParser(
        prog="python -m rhetor_stream",
        description="Run tools and AI specialists and stream what happens as Server-Sent Events.",
        epilog="Every flag can also be set with the variable shown in its help; flags win.",
    )
    for field in attrs.fields(Settings):
        env_help = " or ".join(_env_names(field))
        default = "" if field.metadata["secret"] else f"; default: {field.default!r}"
        options: dict[str, Any] = {
            "dest": field.name,
            "default": None,
            "help": f"{field.metadata['help']} [env {env_help}{default}]",
        }
        kind = _kind(field)
        if field.metadata["repeatable"]:
            options["action"] = "append"
        elif kind is bool:
            options["action"] = "store_const"
            options["const"] = True
        elif kind in (int, float):
            options["type"] = kind
            options["metavar"] = "N"
        if field.name == "log_level":
            options["choices"] = LOG_LEVELS
        if field.name == "provider":
            options["choices"] = PROVIDERS
        parser.add_argument(f"--{field.name.replace('_', '-')}", **options)
    return parser
