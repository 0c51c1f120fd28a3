"""Comparing endpoints by origin: which server a URL reaches, whatever its path or spelling.

A key belongs to a server, so it may go wherever the URL's origin (scheme, host, port) is one the operator
configured; paths do not matter (``http://proxy/v1`` and ``http://proxy/v1/`` are the same server).
"""

from __future__ import annotations

from urllib.parse import urlsplit

DEFAULT_OPENAI_ENDPOINT = "https://api.openai.com/v1"  # where the openai client goes without a base_url
_DEFAULT_PORTS = {"http": 80, "https": 443}


def host_port(url: str | None) -> tuple[str, int] | None:
    """The host (lower case, IPv6 without brackets) and port a URL connects to; None when it names no host."""
    if not url:
        return None
    try:
        parts = urlsplit(url.strip())
        port = parts.port or _DEFAULT_PORTS.get(parts.scheme.lower())
    except ValueError:  # a port that is not a number
        return None
    if not parts.hostname or port is None:
        return None
    return parts.hostname.lower(), port


def origin(url: str | None) -> str | None:
    """``scheme://host:port`` of an http(s) URL, default port filled in; None when it is not one."""
    where = host_port(url)
    if url is None or where is None:
        return None
    scheme = urlsplit(url.strip()).scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        return None
    host, port = where
    return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"
