"""Which hosts we may fetch from or hand to a provider: no loopback, private or link-local addresses
unless an operator configured them (SSRF)."""

from __future__ import annotations

import ipaddress
import socket


def _is_internal(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    return ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast or ip.is_reserved or ip.is_unspecified


def is_internal_host(host: str | None, resolve: bool) -> bool:
    """Whether ``host`` is (or, with ``resolve``, resolves to) an address inside a private network.

    Without ``resolve`` only literal addresses and ``localhost`` count: no DNS lookup in the request path
    for URLs we merely pass on.
    """
    if not host:
        return True
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return _is_internal(host)
    except ValueError:
        pass
    if not resolve:
        return False
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except OSError:
        return False  # unresolvable: nothing to reach
    return any(_is_internal(address.split("%")[0]) for address in addresses)
