"""Hosts of a test's own: network namespaces on a private network, each with its own host name and ``/tmp``.

The test's network is a bridge in the root namespace holding the gateway address (where the test's Redis and
stand-ins listen) of a /24 in 10.231.0.0/16, a range this sandbox gives the tests; each host is a namespace
joined to the bridge by a veth pair, with an address of that /24 on its ``eth0``. A host reaches the services
by the gateway's address only: its loopback is its own. Setting the root end of a host's veth pair down cuts
that host off, as a pulled cable or a lost node would, while its processes keep running.

Names carry a random suffix and the /24 is one no interface of the machine uses, so parallel runs do not
collide; everything is removed at the end, even when the test fails.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import random
import shlex
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.integration.processes import BackendProcess

TEST_RANGE = ipaddress.ip_network("10.231.0.0/16")


def kept_under_tmp() -> list[str]:
    """The checkout and its virtualenv, where they live under ``/tmp`` (a CI clone may): a host's fresh ``/tmp``
    shows them, as a host's disk holds its own copy of the code it runs, and nothing else."""
    checkout, venv = Path(__file__).resolve().parents[2], Path(sys.prefix).resolve()
    return sorted({str(path) for path in (checkout, venv) if Path("/tmp") in path.parents})


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


def namespaces_unavailable() -> str | None:
    """Why this machine cannot run hosts of a test's own, or None when it can."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if not (shutil.which("ip") and shutil.which("unshare")):
        return "`ip` (iproute2) or `unshare` (util-linux) is missing"
    probe = f"llmb-probe-{uuid.uuid4().hex[:6]}"
    try:
        ip("netns", "add", probe)
    except subprocess.CalledProcessError as exc:
        return f"`ip netns add` fails here: {exc.stderr.strip()}"
    ip("netns", "delete", probe)
    return None


@dataclass(frozen=True)
class Host:
    name: str  # its host name: what its workers call themselves by default (celery@<name>)
    namespace: str
    address: str
    link: str  # the root end of its veth pair

    def launcher(self) -> list[str]:
        """Runs a command on this host: in its namespace, under its host name, with an empty ``/tmp`` of its own
        (but for the checkout it runs from, when that lives under ``/tmp``: see ``kept_under_tmp``)."""
        steps = ['hostname "$0"']
        kept = kept_under_tmp()
        if kept:  # the machine's /tmp stays reachable at /mnt in this host's own mount namespace only
            steps += ["mkdir -p /mnt", "mount --bind /tmp /mnt"]
        steps.append("mount -t tmpfs tmpfs /tmp")
        for path in kept:
            inside = shlex.quote(path)
            steps += [f"mkdir -p {inside}", f"mount --bind {shlex.quote('/mnt' + path[len('/tmp') :])} {inside}"]
        script = " && ".join([*steps, 'exec "$@"'])
        unshare = ["unshare", "--uts", "--mount", "--propagation", "private", "sh", "-c", script, self.name]
        return ["ip", "netns", "exec", self.namespace, *unshare]

    def process(self, args: list[str], env: dict[str, str], log_path: Path) -> BackendProcess:
        """An ``llm-backend`` command to run on this host."""
        return BackendProcess(args, env, log_path, launcher=self.launcher())

    def run(self, command: list[str]) -> str:
        """A short command on this host; its output."""
        return subprocess.run([*self.launcher(), *command], check=True, capture_output=True, text=True).stdout

    def cut_off(self) -> None:
        """Take its link down: nothing it sends arrives, nothing reaches it."""
        ip("link", "set", self.link, "down")


@dataclass(frozen=True)
class Network:
    gateway: str  # the root namespace's address on the test's network: where the services listen
    hosts: list[Host]


def free_subnet() -> ipaddress.IPv4Network:
    """A /24 of the test range that no interface of the machine has an address in."""
    listing = subprocess.run(["ip", "-4", "-o", "addr"], check=True, capture_output=True, text=True).stdout
    used = [ipaddress.ip_interface(line.split()[3]).ip for line in listing.splitlines()]
    candidates = list(TEST_RANGE.subnets(new_prefix=24))
    random.shuffle(candidates)
    for subnet in candidates:
        if not any(address in subnet for address in used):
            return subnet
    raise RuntimeError(f"every /24 of {TEST_RANGE} is in use")


@contextlib.contextmanager
def own_network(names: list[str]) -> Iterator[Network]:
    """A bridge with the gateway address and one host per name; all of it removed on exit."""
    suffix = uuid.uuid4().hex[:6]
    subnet = free_subnet()
    addresses = list(subnet.hosts())
    gateway, bridge = str(addresses[0]), f"llmb{suffix}"
    hosts = [
        Host(name, f"llmb-{suffix}-{name}", str(addresses[10 + index]), f"llmb{suffix}h{index}")
        for index, name in enumerate(names)
    ]
    try:
        ip("link", "add", bridge, "type", "bridge")
        ip("addr", "add", f"{gateway}/{subnet.prefixlen}", "dev", bridge)
        ip("link", "set", bridge, "up")
        for host in hosts:
            ip("netns", "add", host.namespace)
            ip("link", "add", host.link, "type", "veth", "peer", "name", "eth0", "netns", host.namespace)
            ip("link", "set", host.link, "master", bridge, "up")
            ip("-n", host.namespace, "addr", "add", f"{host.address}/{subnet.prefixlen}", "dev", "eth0")
            ip("-n", host.namespace, "link", "set", "eth0", "up")
            ip("-n", host.namespace, "link", "set", "lo", "up")
        yield Network(gateway, hosts)
    finally:
        for host in hosts:
            # Deleting the namespace deletes its end of the pair, and with it the other end.
            with contextlib.suppress(subprocess.CalledProcessError):
                ip("netns", "delete", host.namespace)
            with contextlib.suppress(subprocess.CalledProcessError):
                ip("link", "delete", host.link)
        with contextlib.suppress(subprocess.CalledProcessError):
            ip("link", "delete", bridge)
