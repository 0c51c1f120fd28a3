"""Which hosts we may connect to or hand to a provider (SSRF), and HTTP transports that enforce it.

Hosts the operator configured (``LABEL_STUDIO_URL``, the LLM endpoints, ``ALLOWED_LLM_ENDPOINTS``, each with
its port) and the hosts in ``ALLOWED_PRIVATE_HOSTS`` (any port) are reached wherever they are.  Any other
host, named by a request (a ``/setup`` hostname, a project's endpoint, an image URL), must resolve to public
addresses only: every spelling is resolved first (``127.1``, ``2130706433``, ``0x7f.0.0.1``, names in
/etc/hosts), and IPv6 forms that embed an IPv4 address (``::ffff:127.0.0.1``, 6to4, NAT64, Teredo) are
judged by that address.

The transports check at connect time, on the address they then connect to (so DNS cannot answer one address
to the check and another to the connection), and make every socket operation end by the request's deadline
(``shared.adapters.deadline``).
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from shared.adapters import deadline
from shared.domain.callers import LOOPBACK_NAMES as _LOOPBACK_NAMES
from shared.domain.config import Settings
from shared.domain.endpoints import DEFAULT_OPENAI_ENDPOINT, host_port

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
RESOLVED_FOR = 30.0  # seconds a lookup is reused: a check per request must not cost a DNS query each time
_resolved: dict[tuple[str, int | None], tuple[float, list[str]]] = {}


def _judged_address(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """The address that decides: the IPv4 address inside an IPv6 form that embeds one, else itself."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        if ip in _NAT64:
            return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is not None:
            return embedded
    return ip


def is_public_address(address: str) -> bool:
    """Whether an IP address is on the public internet (not loopback, private, link-local, shared, reserved…)."""
    ip = _judged_address(address)
    return ip.is_global and not ip.is_multicast


def resolve(host: str, port: int | None = None) -> list[str]:
    """Every address ``host`` stands for (numeric spellings included); [] when it does not resolve.

    Reusing a lookup is safe: connections go to the very address that was checked, whatever DNS says later.
    """
    now = time.monotonic()
    hit = _resolved.get((host, port))
    if hit is not None and hit[0] > now:
        return hit[1]
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        infos = []
    found = (info[4][0] for info in infos)  # an int only for an IPv6 answer to a Python built without IPv6
    addresses = list(dict.fromkeys(address for address in found if isinstance(address, str)))
    if len(_resolved) > 4096:
        _resolved.clear()
    _resolved[(host, port)] = (now + RESOLVED_FOR, addresses)
    return addresses


@dataclass(frozen=True)
class AddressPolicy:
    trusted: frozenset[tuple[str, int]] = frozenset()  # (host, port) the operator configured
    private_hosts: frozenset[str] = frozenset()  # ALLOWED_PRIVATE_HOSTS, any port

    @classmethod
    def from_settings(cls, settings: Settings) -> AddressPolicy:
        configured = [
            settings.label_studio_url,
            settings.openai_base_url or DEFAULT_OPENAI_ENDPOINT,
            settings.azure_resource_endpoint,
            settings.ollama_endpoint,
            *settings.allowed_llm_endpoints,
        ]
        trusted = frozenset(filter(None, map(host_port, configured)))
        private = frozenset(_normal(host) for host in settings.allowed_private_hosts)
        return cls(trusted, private)

    def trusts(self, host: str, port: int | None) -> bool:
        host = _normal(host)
        return host in self.private_hosts or (host, port) in self.trusted

    def refusal(self, host: str | None, port: int | None = None, *, unresolved_ok: bool = False) -> str | None:
        """Why we may not connect to (or pass on) ``host``, or None.

        ``unresolved_ok``: a name we cannot resolve is let through (for URLs the provider fetches: it may see
        names we do not, and cannot reach our network with them); for our own connections it fails anyway.
        """
        if not host:
            return "the URL names no host"
        if self.trusts(host, port):
            return None
        host = _normal(host)
        if host in _LOOPBACK_NAMES or host.endswith(".localhost"):
            return f"{host} is this machine"
        addresses = resolve(host, port)
        if not addresses:
            return None if unresolved_ok else f"{host} does not resolve"
        private = next((address for address in addresses if not is_public_address(address)), None)
        if private is not None:
            shown = host if host == private else f"{host} ({private})"
            return f"{shown} is a loopback, private or link-local address"
        return None

    def public_addresses(self, host: str, port: int) -> list[str]:
        """The addresses to connect to for a host that must be public; raises ConnectionRefusedError otherwise."""
        reason = self.refusal(host, port)
        if reason:
            raise ConnectionRefusedError(f"not connecting to {host}: {reason} (see ALLOWED_PRIVATE_HOSTS)")
        return resolve(host, port)


def _normal(host: str) -> str:
    return host.strip().strip("[]").lower().rstrip(".")


class _GuardedStream:
    """A network stream whose reads and writes end by the deadline (an httpcore ``NetworkStream``)."""

    def __init__(self, inner: Any, core: ModuleType) -> None:
        self._inner, self._core = inner, core

    def _timeout(self, timeout: float | None, expired: type[Exception]) -> float | None:
        left = deadline.remaining()
        if left is None:
            return timeout
        if left <= 0:
            raise expired("the request's deadline passed")
        return left if timeout is None else min(timeout, left)

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        data: bytes = self._inner.read(max_bytes, self._timeout(timeout, self._core.ReadTimeout))
        return data

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, self._timeout(timeout, self._core.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None) -> Any:
        timeout = self._timeout(timeout, self._core.ConnectTimeout)
        return _GuardedStream(self._inner.start_tls(ssl_context, server_hostname, timeout), self._core)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class GuardedBackend:
    """An httpcore network backend: the address policy at connect time, the deadline on every operation.

    ``core`` is the httpcore module in use (``httpcore`` under the Label Studio SDK's httpx, ``httpcore2``
    under the openai client's httpx2); their backends share one interface.  Without a policy (an LLM client
    built outside a deployment's settings) addresses are not checked, the deadline still holds.
    """

    def __init__(self, core: ModuleType, policy: AddressPolicy | None) -> None:
        self._core, self._policy = core, policy
        self._inner = core.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> _GuardedStream:
        left = deadline.remaining()
        if left is not None:
            if left <= 0:
                raise self._core.ConnectTimeout("the request's deadline passed")
            timeout = left if timeout is None else min(timeout, left)
        target = host
        if self._policy is not None and not self._policy.trusts(host, port):
            try:
                target = self._policy.public_addresses(host, port)[0]  # connect to the address we checked
            except (ConnectionRefusedError, IndexError) as exc:
                raise self._core.ConnectError(str(exc) or f"{host} does not resolve") from None
        stream = self._inner.connect_tcp(target, port, timeout, local_address, socket_options)
        return _GuardedStream(stream, self._core)

    def connect_unix_socket(self, path: str, timeout: float | None = None, socket_options: Any = None) -> Any:
        raise self._core.ConnectError("unix sockets are not used by this backend")

    def sleep(self, seconds: float) -> None:
        deadline.sleep(seconds)


def guarded_transport(httpx_module: ModuleType, core: ModuleType, policy: AddressPolicy | None, **options: Any) -> Any:
    """An ``HTTPTransport`` of ``httpx_module`` (``options`` as it takes them) whose connections go through a
    GuardedBackend.

    httpx offers no parameter for the network backend, so it is set on the transport's connection pool, the
    one place both httpx and httpx2 read it from (tests/unit/test_netguard.py fails if that ever changes).
    """
    transport = httpx_module.HTTPTransport(**options)
    transport._pool._network_backend = GuardedBackend(core, policy)
    return transport
