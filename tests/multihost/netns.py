"""Hosts made of Linux network namespaces, for tests of what crosses a network.

A lab is a switch (a bridge inside a namespace of its own) and hosts, each a namespace with one
veth link to the switch and an address on that link only. The test process joins the switch
through one more link, so it reaches every host as a client on the network would. Cutting a
host off is `ip link set eth0 down` inside it: its processes keep running, their connections
stall, as when a host's network fails; putting it back brings the same connections back.

Names carry the test process's pid and the subnet is chosen from it, so two runs on one
machine (a session and its CI) do not meet.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess
from dataclasses import dataclass, field


class LabUnavailable(Exception):
    """Namespaces cannot be made here (not root, no `ip`, or a sandbox that forbids them)."""


def _ip(*arguments: str) -> None:
    subprocess.run(["ip", *arguments], check=True, capture_output=True, text=True)


def can_make_namespaces() -> str | None:
    """None when a namespace can be made here, else the reason it cannot."""
    if shutil.which("ip") is None:
        return "the `ip` command (iproute2) is not installed"
    if os.geteuid() != 0:
        return "making network namespaces needs root"
    probe = f"fbprobe{os.getpid()}"
    try:
        _ip("netns", "add", probe)
    except subprocess.CalledProcessError as error:
        return f"`ip netns add` failed: {error.stderr.strip()}"
    _ip("netns", "del", probe)
    return None


@dataclass
class Host:
    name: str
    namespace: str
    address: str

    def command(self, arguments: list[str]) -> list[str]:
        """``arguments`` run inside this host's namespace."""
        return ["ip", "netns", "exec", self.namespace, *arguments]


@dataclass
class Lab:
    prefix: str
    network: ipaddress.IPv4Network
    hosts: dict[str, Host] = field(default_factory=dict)
    _uplink: str = ""

    @classmethod
    def create(cls) -> Lab:
        reason = can_make_namespaces()
        if reason:
            raise LabUnavailable(reason)
        pid = os.getpid()
        # 10.(200-249).x.0/24: away from the 10.0-10.199 ranges that container networks use.
        network = ipaddress.ip_network(f"10.{200 + pid % 50}.{(pid // 50) % 256}.0/24")
        lab = cls(prefix=f"fb{pid}", network=network)
        _ip("netns", "add", lab.switch)
        _ip("-n", lab.switch, "link", "add", "br0", "type", "bridge")
        _ip("-n", lab.switch, "link", "set", "br0", "up")
        # The test process's own link: its end in the root namespace gets the first address.
        lab._uplink = f"fbt{pid % 100000}"
        _ip("link", "add", lab._uplink, "type", "veth", "peer", "name", "up0")
        _ip("link", "set", "up0", "netns", lab.switch)
        _ip("-n", lab.switch, "link", "set", "up0", "master", "br0", "up")
        _ip("addr", "add", f"{lab._address(1)}/{network.prefixlen}", "dev", lab._uplink)
        _ip("link", "set", lab._uplink, "up")
        return lab

    @property
    def switch(self) -> str:
        return f"{self.prefix}-switch"

    @property
    def client_address(self) -> str:
        """The test process's address on the lab's network."""
        return self._address(1)

    def _address(self, number: int) -> str:
        return str(self.network.network_address + number)

    def add_host(self, name: str) -> Host:
        host = Host(name, f"{self.prefix}-{name}", self._address(2 + len(self.hosts)))
        _ip("netns", "add", host.namespace)
        _ip("-n", host.namespace, "link", "set", "lo", "up")
        port = f"p{len(self.hosts)}"
        _ip("-n", self.switch, "link", "add", port, "type", "veth", "peer", "name", "eth0")
        _ip("-n", self.switch, "link", "set", "eth0", "netns", host.namespace)
        _ip("-n", self.switch, "link", "set", port, "master", "br0", "up")
        _ip("-n", host.namespace, "addr", "add", f"{host.address}/24", "dev", "eth0")
        _ip("-n", host.namespace, "link", "set", "eth0", "up")
        self.hosts[name] = host
        return host

    def cut(self, host: Host) -> None:
        _ip("-n", host.namespace, "link", "set", "eth0", "down")

    def restore(self, host: Host) -> None:
        _ip("-n", host.namespace, "link", "set", "eth0", "up")

    def close(self) -> None:
        for host in self.hosts.values():
            subprocess.run(["ip", "netns", "del", host.namespace], capture_output=True)
        subprocess.run(["ip", "link", "del", self._uplink], capture_output=True)
        subprocess.run(["ip", "netns", "del", self.switch], capture_output=True)
