"""The plain data of networking: networks, requested and published ports, endpoints (all JSON-able)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

BUILTIN_NETWORKS = ("bridge", "host", "none")


@dataclass(frozen=True, slots=True)
class PortBinding:
    """A port to publish (``-p [ip:][hostport:]ctrport[/proto]``); ``host_port`` 0 picks a free one (``-P``),
    ``host_port_end`` > 0: any free one in ``host_port..host_port_end`` (``-p 8000-8010:80``)."""

    container_port: int
    protocol: str = "tcp"
    host_ip: str = ""
    host_port: int = 0
    host_port_end: int = 0


@dataclass(frozen=True, slots=True)
class PublishedPort:
    """A published port as set up: the host side resolved (``host_ip`` "0.0.0.0" = every local address)."""

    container_port: int
    protocol: str
    host_ip: str
    host_port: int

    def __str__(self) -> str:   # docker ps: 0.0.0.0:8080->80/tcp
        return f"{self.host_ip}:{self.host_port}->{self.container_port}/{self.protocol}"


@dataclass(frozen=True, slots=True)
class Network:
    """One network record (``<root>/networks/<id>.json``).  ``driver`` is bridge, host or null (docker's)."""

    id: str
    name: str
    driver: str
    subnet: str = ""
    gateway: str = ""
    bridge: str = ""
    created: str = ""
    labels: dict = field(default_factory=dict)
    internal: bool = False

    @property
    def builtin(self) -> bool:
        return self.name in BUILTIN_NETWORKS

    @property
    def resolves_names(self) -> bool:
        """User-defined bridge networks resolve container names (docker: not the default ``bridge``)."""
        return self.driver == "bridge" and not self.builtin

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Network":
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A container's attachment to a network, persisted so release works from the file alone.

    ``netns`` is the bind-mounted namespace file to give the sandbox (``RunSpec.netns``); empty for
    ``host`` (run with the host's network) and ``none`` (the sandbox's own empty namespace)."""

    container_id: str
    network: str                 # the network's name
    network_id: str
    netns: str = ""
    ip: str = ""
    prefix: int = 0
    gateway: str = ""
    mac: str = ""
    veth: str = ""               # host side of the veth pair
    bridge: str = ""
    ports: tuple[PublishedPort, ...] = ()
    name: str = ""
    aliases: tuple[str, ...] = ()
    hostname: str = ""
    hosts_path: str = ""
    resolv_path: str = ""
    extra_hosts: tuple[tuple[str, str], ...] = ()
    owner_pid: int = 0           # the process that connected it (a build, a starting container) and its
    owner_start: int = 0         # start time: while it runs, sweep leaves the endpoint alone

    def to_dict(self) -> dict:
        return asdict(self)

    def to_inspect(self) -> dict:
        """The container inspect's network settings (docker's names): address, gateway, MAC, ids, ports."""
        from .manager import endpoint_id

        ports: dict = {}
        for port in self.ports:
            ports.setdefault(f"{port.container_port}/{port.protocol}", []).append(
                {"HostIp": port.host_ip, "HostPort": str(port.host_port)})
        return {"IPAddress": self.ip, "IPPrefixLen": self.prefix, "Gateway": self.gateway, "MacAddress": self.mac,
                "NetworkID": self.network_id, "EndpointID": endpoint_id(self) if self.ip else "",
                "SandboxKey": self.netns, "Ports": ports}

    @classmethod
    def from_dict(cls, data: dict) -> "Endpoint":
        known = cls.__dataclass_fields__
        values = {k: v for k, v in data.items() if k in known}
        values["ports"] = tuple(PublishedPort(**p) for p in values.get("ports", ()))
        values["aliases"] = tuple(values.get("aliases", ()))
        values["extra_hosts"] = tuple(tuple(h) for h in values.get("extra_hosts", ()))
        return cls(**values)


__all__ = ["PortBinding", "PublishedPort", "Network", "Endpoint", "BUILTIN_NETWORKS"]
