"""Which URLs a webhook may target: http(s) only, and only public addresses unless allowed.

A webhook makes the service send requests to an address a user chose, so without this guard a
user could reach the database, the metadata service or anything else on the private network
(server-side request forgery). Every address a host name resolves to must be public, or inside
one of the networks the operator allowed (``FLOWBIN_WEBHOOK_ALLOWED_NETWORKS``). The check runs
when a run is submitted and again before every attempt, because DNS answers can change.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from urllib.parse import urlsplit

from shared.errors import InvalidRequest

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], list[str]]


class BlockedUrl(InvalidRequest):
    """A webhook URL that must not be called; the message says why and what to change."""


def parse_networks(text: str) -> tuple[Network, ...]:
    """``"10.0.0.0/8, 127.0.0.1/32"`` to networks; a bad entry is a clear configuration error."""
    networks = []
    for entry in (part.strip() for part in text.split(",")):
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError as error:
            raise ValueError(
                f"FLOWBIN_WEBHOOK_ALLOWED_NETWORKS: {entry!r} is not a network ({error})"
            ) from error
    return tuple(networks)


def resolve(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(info[4][0] for info in infos))


def _unmapped(address: Address) -> Address:
    """``::ffff:10.0.0.1`` is 10.0.0.1 on the wire: judge it as that."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _is_public(address: Address) -> bool:
    return address.is_global and not address.is_multicast


def _kind(address: Address) -> str:
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_multicast:
        return "multicast"
    if address.is_unspecified:
        return "unspecified"
    return "private or reserved"


def _addresses(host: str, port: int, resolver: Resolver, field: str) -> list[Address]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        found = [ipaddress.ip_address(a.split("%", 1)[0]) for a in resolver(host, port)]
    except (OSError, UnicodeError) as error:
        raise BlockedUrl(f"{field}: the host {host!r} does not resolve ({error})") from error
    if not found:
        raise BlockedUrl(f"{field}: the host {host!r} does not resolve")
    return found


def check_url(
    url: str,
    allowed_networks: tuple[Network, ...] = (),
    *,
    field: str = "url",
    resolver: Resolver = resolve,
) -> str:
    """Return ``url`` if a webhook may call it, else raise BlockedUrl naming ``field``."""
    if not isinstance(url, str) or not url.strip():
        raise BlockedUrl(f"{field}: a webhook URL is required")
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as error:
        raise BlockedUrl(f"{field}: {url!r} is not a valid URL ({error})") from error
    if parts.scheme not in ("http", "https"):
        raise BlockedUrl(f"{field}: only http and https URLs can receive webhooks, not {url!r}")
    host = parts.hostname
    if not host:
        raise BlockedUrl(f"{field}: {url!r} has no host")
    port = port or (443 if parts.scheme == "https" else 80)
    addresses = _addresses(host, port, resolver, field)
    for address in map(_unmapped, addresses):
        if _is_public(address) or any(address in network for network in allowed_networks):
            continue
        raise BlockedUrl(
            f"{field}: {host!r} is a {_kind(address)} address ({address}); webhooks go to "
            "public addresses only, unless the operator allows the network in "
            "FLOWBIN_WEBHOOK_ALLOWED_NETWORKS"
        )
    return url.strip()
