"""Where a URL a user chose may take Flowbin's requests: http(s) only, public addresses only
unless the operator allowed the network, judged on the address actually connected to.

Users choose two kinds of URL that the service then calls: completion webhooks
(``shared.delivery.webhooks``) and the flow's http step (``shared.flow.step_types.http``).
Without this guard a user could reach the database, the cloud metadata service or anything else
on the private network (server-side request forgery). So, for every request and every hop:

- the scheme is http or https;
- every address the host resolves to is public, or inside a network the operator allowed; one
  refused address refuses the URL, since which answer a connection uses is not ours to choose;
- the check and the connection share one lookup: a ``UrlGuard.session()`` resolves the host
  when it opens a connection, checks every answer and connects to those addresses, never to the
  name again, so a name that answers a public address to the check and a private one to the
  connection (DNS rebinding) gets nowhere. Only the socket's address is pinned: the Host header,
  TLS SNI and certificate verification still use the host name;
- a redirect is a new request through the same session, so its connection is checked the same
  way before anything is sent to it, and ``max_redirects`` caps the hops;
- proxy variables are ignored and proxies refused: the guard judges the receiver's address.

Why an adapter of our own rather than a library: requests-hardened allows loopback or nothing
(no operator networks) and takes no resolver; advocate has not been kept up since 2020; ssrfguard
does this job but is a months-old 0.x whose API may still move. The seam used here,
``urllib3.connection.HTTPConnection._new_conn``, is where urllib3 resolves the host and opens the
socket, and nowhere else uses the address; tests/unit/test_url_guard.py fails if that changes.
"""

from __future__ import annotations

import functools
import ipaddress
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError
from urllib3.util import connection as urllib3_connection

from shared.errors import InvalidRequest

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
# (host, port) to the addresses it resolves to, as text; the tests give their own.
Resolver = Callable[[str, int], list[str]]
SETTING = "FLOWBIN_ALLOWED_NETWORKS"
# The older setting, for webhooks only (shared/delivery/webhooks.py).
WEBHOOK_SETTING = "FLOWBIN_WEBHOOK_ALLOWED_NETWORKS"


class BlockedUrl(InvalidRequest):
    """A URL that must not be called. ``reason`` says why and what to change; the message also
    names the field that held the URL, when there is one."""

    def __init__(self, reason: str, field: str = ""):
        super().__init__(f"{field}: {reason}" if field else reason)
        self.reason = reason


@functools.lru_cache(maxsize=16)
def parse_networks(text: str, setting: str = SETTING) -> tuple[Network, ...]:
    """``"10.0.0.0/8, 127.0.0.1/32"`` to networks; a bad entry is a ValueError naming
    ``setting``. Cached: every step and every delivery attempt asks again."""
    networks = []
    for entry in (part.strip() for part in text.split(",")):
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError as error:
            raise ValueError(f"{setting}: {entry!r} is not a network ({error})") from error
    return tuple(networks)


def check_networks(allowed: str, webhook_allowed: str) -> None:
    """Refuse bad network settings when a process starts, with a ValueError that names the
    setting, rather than in every step, delivery and sync run that asks the guard later."""
    parse_networks(allowed)
    parse_networks(webhook_allowed, WEBHOOK_SETTING)


def resolve(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(info[4][0] for info in infos))


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int


def split_url(url: Any) -> Target:
    """The URL's scheme, host and port, or BlockedUrl; no lookup (a flow's compile uses this)."""
    if not isinstance(url, str) or not url.strip():
        raise BlockedUrl("a URL is required")
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as error:
        raise BlockedUrl(f"{url!r} is not a valid URL ({error})") from error
    if parts.scheme not in ("http", "https"):
        raise BlockedUrl(
            f"only http and https URLs can be called, not {url!r}: use http:// or https://"
        )
    if not parts.hostname:
        raise BlockedUrl(f"{url!r} has no host")
    return Target(parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80))


def _unmapped(address: Address) -> Address:
    """``::ffff:10.0.0.1`` is 10.0.0.1 on the wire: judge it as that."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _kind(address: Address) -> str:
    for kind in ("loopback", "link-local", "multicast", "unspecified"):
        if getattr(address, f"is_{kind.replace('-', '_')}"):
            return kind
    return "private or reserved"


@dataclass(frozen=True)
class UrlGuard:
    """The networks the operator allowed besides public addresses, how names resolve, and the
    setting a refusal tells the operator about."""

    allowed_networks: tuple[Network, ...] = ()
    resolver: Resolver = resolve
    setting: str = SETTING

    def addresses(self, host: str, port: int) -> list[str]:
        """One lookup of ``host`` (none for an address), every answer checked: the addresses
        a connection may use, or BlockedUrl."""
        try:
            found = [str(ipaddress.ip_address(host))]
        except ValueError:
            try:
                found = self.resolver(host, port)
            except (OSError, UnicodeError) as error:
                raise BlockedUrl(f"the host {host!r} does not resolve ({error})") from error
        if not found:
            raise BlockedUrl(f"the host {host!r} does not resolve")
        for text in found:
            address = _unmapped(ipaddress.ip_address(text.split("%", 1)[0]))
            if (address.is_global and not address.is_multicast) or any(
                address in network for network in self.allowed_networks
            ):
                continue
            raise BlockedUrl(
                f"{host!r} is a {_kind(address)} address ({address}); Flowbin calls public "
                f"addresses only, unless the operator allows the network in {self.setting}"
            )
        return found

    def check_url(self, url: Any, field: str = "url") -> str:
        """``url`` stripped, if it may be called now, else BlockedUrl naming ``field``. A later
        request looks the host up again: only ``session()`` pins what it checked."""
        try:
            target = split_url(url)
            self.addresses(target.host, target.port)
        except BlockedUrl as error:
            raise BlockedUrl(error.reason, field) from None
        return url.strip()

    def session(self, max_redirects: int = 5) -> requests.Session:
        """A requests session whose every connection goes through this guard; it follows at
        most ``max_redirects`` redirects when a request allows them (``allow_redirects=False``
        follows none: requests raises TooManyRedirects on any 3xx when ``max_redirects`` is 0)."""
        return _GuardedSession(self, max_redirects)


def check_url(
    url: Any,
    allowed_networks: tuple[Network, ...] = (),
    *,
    field: str = "url",
    resolver: Resolver = resolve,
) -> str:
    return UrlGuard(allowed_networks, resolver).check_url(url, field)


class _PinnedConnection(HTTPConnection):
    guard: UrlGuard  # set on the subclasses each adapter makes

    def _new_conn(self) -> socket.socket:
        # What urllib3's own _new_conn does, but with the guard's one checked lookup in place of
        # create_connection's getaddrinfo: each address is an IP, so nothing resolves again.
        host = self._dns_host.strip("[]")
        error: OSError | None = None
        for address in self.guard.addresses(host, self.port):
            try:
                sock = urllib3_connection.create_connection(
                    (address, self.port),
                    self.timeout,
                    source_address=self.source_address,
                    socket_options=self.socket_options,
                )
            except OSError as failure:
                error = failure
                continue
            sys.audit("http.client.connect", self, self.host, self.port)
            return sock
        if isinstance(error, TimeoutError):
            raise ConnectTimeoutError(
                self, f"Connection to {self.host} timed out. (connect timeout={self.timeout})"
            ) from error
        raise NewConnectionError(self, f"Failed to establish a new connection: {error}") from error


class _GuardedAdapter(HTTPAdapter):
    def __init__(self, guard: UrlGuard):
        self.guard = guard  # before super().__init__, which builds the pool manager
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        attrs = {"guard": self.guard}
        http = type("GuardedHTTPConnection", (_PinnedConnection,), attrs)
        https = type("GuardedHTTPSConnection", (_PinnedConnection, HTTPSConnection), attrs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": type("GuardedHTTPPool", (HTTPConnectionPool,), {"ConnectionCls": http}),
            "https": type("GuardedHTTPSPool", (HTTPSConnectionPool,), {"ConnectionCls": https}),
        }

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        raise BlockedUrl("requests to user-chosen URLs do not go through a proxy")


class _GuardedSession(requests.Session):
    def __init__(self, guard: UrlGuard, max_redirects: int):
        super().__init__()
        self.trust_env = False  # no proxy or .netrc from the environment
        self.max_redirects = max_redirects
        adapter = _GuardedAdapter(guard)
        self.mount("http://", adapter)
        self.mount("https://", adapter)

    def get_adapter(self, url: str) -> Any:
        split_url(url)  # every hop: a redirect to ftp: or file: is refused with the reason
        return super().get_adapter(url)
