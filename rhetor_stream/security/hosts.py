"""DNS rebinding and cross-site request protection: which `Host` and `Origin` headers are accepted.

A web page the user visits can point its own domain name at 127.0.0.1 (DNS rebinding) and then talk
to a loopback server as if same-origin; its requests still name the attacker's domain in `Host`.
Any page can also send requests to another origin (a form POST needs no CORS permission); the
browser then names the page in `Origin`. So: on a loopback bind only loopback names are accepted
in `Host` (plus `--allowed-host`), and an `Origin` must be the server's own or a `--cors-origin`.
"""
from __future__ import annotations

from urllib.parse import urlsplit

import attrs

from rhetor_stream.settings import is_loopback

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


def host_name(host: str) -> str:
    """The name of a `Host` header or `--allowed-host` value, without port or IPv6 brackets."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].partition("]")[0]
    name, colon, port = host.rpartition(":")
    return name if colon and port.isdigit() and ":" not in name else host


@attrs.frozen
class HostPolicy:
    #: names accepted in `Host`; None: any (a non-loopback bind without --allowed-host)
    hosts: frozenset[str] | None
    #: origins accepted besides the server's own; "*" in it accepts any
    origins: frozenset[str]

    @classmethod
    def build(cls, bind: str, allowed_hosts: tuple[str, ...], cors_origins: tuple[str, ...]) -> HostPolicy:
        hosts: frozenset[str] | None = LOOPBACK_NAMES | {host_name(host) for host in allowed_hosts}
        if "*" in allowed_hosts or (not allowed_hosts and not is_loopback(bind)):
            hosts = None
        return cls(hosts, frozenset(origin.rstrip("/").lower() for origin in cors_origins))

    def host_problem(self, host: str | None) -> str | None:
        """Why `host` (the request's Host header) is refused, or None."""
        if self.hosts is None or host is None or host_name(host) in self.hosts:
            return None
        return (f"Host {host!r} is not served here (DNS rebinding protection); a reverse proxy's name "
                "must be allowed with --allowed-host")

    def origin_problem(self, origin: str | None, host: str | None) -> str | None:
        """Why a request from a page of `origin` to this server (named `host`) is refused, or None."""
        if origin is None:
            return None  # not sent by a browser page (or a same-origin GET)
        normalized = origin.rstrip("/").lower()
        if "*" in self.origins or normalized in self.origins:
            return None
        if host is not None and normalized != "null" and _netloc(normalized) == host.strip().lower():
            return None
        return f"requests from pages of {origin} are not allowed (add the origin with --cors-origin)"


def _netloc(origin: str) -> str | None:
    """The host and port an `Origin` names; None for one that is not a URL (`http://[::1` makes
    urlsplit raise), which then matches no host."""
    try:
        return urlsplit(origin).netloc
    except ValueError:
        return None
