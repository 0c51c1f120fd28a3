"""Who may call the API: the address it listens on, the ``Host`` a request names, the page that sent it.

A page open in a browser on the operator's network can send requests to a backend it could never reach
itself: to its address directly (a cross-site request, which carries that page's ``Origin``), or through a
name of its own that its DNS then answers with the backend's address (DNS rebinding, which carries that name
as ``Host``). Label Studio's own calls come from its server, with no ``Origin``, and name the backend as it
was given: ``localhost``, an IP address, or a name the operator lists in ``ALLOWED_HOSTS``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from shared.domain.endpoints import origin

# Names that mean this machine wherever they are looked up (RFC 6761, and Debian's /etc/hosts aliases), so no
# page can rebind them.
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})
ANY_HOST = "*"


def _ip(name: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(name)
    except ValueError:
        return None


def is_loopback(host: str) -> bool:
    """``host`` (a name or an address, IPv6 with or without brackets) is this machine only."""
    name = host.strip().strip("[]").lower().rstrip(".")
    if name in LOOPBACK_NAMES or name.endswith(".localhost"):
        return True
    address = _ip(name)
    return address is not None and address.is_loopback


def host_name(header: str) -> str:
    """The name in a ``Host`` header, without its port, lower case: ``[::1]:9090`` gives ``::1``."""
    text = header.strip().lower()
    if text.startswith("["):
        return text[1:].split("]", 1)[0]
    if text.count(":") == 1:
        text = text.split(":", 1)[0]
    return text.rstrip(".")


def host_allowed(header: str, allowed: Iterable[str]) -> bool:
    """A request naming ``header`` as its Host may be answered: a loopback name, an IP address (a rebinding
    page can only send its own name), a name in ``allowed``, or anything when ``allowed`` holds ``*``."""
    allowed = [name.strip().lower().rstrip(".") for name in allowed]
    if ANY_HOST in allowed:
        return True
    name = host_name(header)
    if not name:
        return False
    return is_loopback(name) or _ip(name) is not None or name in allowed


def origin_allowed(header: str, allowed: Iterable[str]) -> bool:
    """A browser page of origin ``header`` may call the API: only an origin listed in ``allowed`` (compared by
    scheme, host and port; ``null``, sent by sandboxed pages and local files, never is)."""
    given = origin(header)
    return given is not None and given in {origin(item) for item in allowed}


def unprotected_listening(host: str, has_basic_auth: bool, allow_unauthenticated: bool) -> str | None:
    """Why ``llm-backend api`` must not listen on ``host``, or None: anywhere but loopback, without basic auth,
    whoever reaches the port may use the LLM on the operator's key, and the operator did not say they accept it."""
    if has_basic_auth or allow_unauthenticated or is_loopback(host):
        return None
    return (
        f"refusing to listen on {host or 'every address'} without basic auth: whoever reaches this port could "
        "register projects and spend your LLM key. Set BASIC_AUTH_USER and BASIC_AUTH_PASS (and choose basic auth "
        "in Label Studio's model settings), or listen on loopback only (--host 127.0.0.1), or set "
        "ALLOW_UNAUTHENTICATED=true if a network of your own already keeps others out"
    )
