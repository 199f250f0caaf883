"""Networks and container endpoints: docker's bridge/host/none plus user-defined bridge networks.

A bridge endpoint is a network namespace (a bind-mounted file the sandbox joins), a veth pair whose
host side is enslaved to the network's bridge, an address from the network's subnet, a default
route through the bridge's address, MASQUERADE to the outside and DNAT rules for published ports
(127.0.0.1 included: route_localnet on the bridge + MASQUERADE of loopback sources).  Everything
needed to undo it is in the endpoint's JSON, written before anything is created, so ``disconnect``
and ``sweep`` work after a crash or a SIGKILL.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import re
import secrets
import time
from dataclasses import replace
from pathlib import Path

from . import etchosts, firewall, system
from .errors import NetworkError, NoSuchNetwork
from .model import BUILTIN_NETWORKS, Endpoint, Network, PortBinding, PublishedPort
from .state import NetworkState

DEFAULT_BRIDGE = "pybr0"
BUILD_NETWORK = "pybuild:build"          # not a valid user name: RUN steps of builds (BuildKit's CNI bridge)
BUILD_BRIDGE = "pybr-build"
DEFAULT_ROOT = "/var/lib/pybuild"
_PREFERRED = {"bridge": "172.18.0.0/16", BUILD_NETWORK: "10.10.0.0/16"}
_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")


def _pools():
    """Candidate subnets for new networks, docker's order (172.17-31/16, then 192.168.x/20), skipping 172.17
    (docker0's)."""
    for second in range(18, 32):
        yield ipaddress.ip_network(f"172.{second}.0.0/16")
    for third in range(0, 256, 16):
        yield ipaddress.ip_network(f"192.168.{third}.0/20")


def _host_routes() -> list[ipaddress.IPv4Network]:
    """The IPv4 routes of this network namespace (other than the default route)."""
    out = []
    try:
        with open("/proc/net/route") as fh:
            next(fh)
            for line in fh:
                fields = line.split()
                dest, mask = int(fields[1], 16), int(fields[7], 16)
                if mask:
                    out.append(ipaddress.ip_network((ipaddress.IPv4Address(dest.to_bytes(4, "little")),
                                                    bin(mask).count("1")), strict=False))
    except (OSError, StopIteration, ValueError, IndexError):
        pass
    return out


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + f".{time.time_ns() % 1_000_000_000:09d}Z"


class NetworkManager:
    """Networks of one store root (``<root>/networks/``); namespace files under ``run_dir``."""

    def __init__(self, store_root, *, run_dir=None, bridge_names: dict | None = None):
        self.root = Path(store_root)
        self.bridge_names = bridge_names or {}
        self.state = NetworkState(self.root)
        digest = hashlib.sha256(str(self.root.resolve()).encode()).hexdigest()[:12]
        self.tag = digest                   # in every iptables comment: sweeps of other roots leave ours alone
        self.run_dir = Path(run_dir) if run_dir else Path("/run/pybuild") / digest
        self.netns_dir = self.run_dir / "netns"

    # -- networks ------------------------------------------------------------------------------------

    def list(self) -> list[Network]:
        """Every network users see (built-ins first time materialized), by name."""
        with self.state.locked():
            networks = self._networks()
        return sorted((n for n in networks if n.name != BUILD_NETWORK), key=lambda n: n.name)

    def get(self, name: str) -> Network:
        """A network by name, full id or unique id prefix (docker's lookup order)."""
        with self.state.locked():
            return self._get(name)

    def create(self, name: str, subnet: str | None = None, gateway: str | None = None,
               labels: dict | None = None, driver: str = "bridge", internal: bool = False) -> Network:
        if not _NAME.match(name or ""):
            raise NetworkError(f'invalid network name "{name}": only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed')
        if driver != "bridge":
            raise NetworkError(f"plugin \"{driver}\" not found" if driver not in ("host", "null")
                               else f"only one instance of \"{driver}\" network is allowed")
        with self.state.locked():
            networks = self._networks()
            if any(n.name == name for n in networks):
                raise NetworkError(f"network with name {name} already exists")
            net, gw = self._address_plan(networks, subnet, gateway)
            network_id = hashlib.sha256(secrets.token_bytes(32)).hexdigest()
            network = Network(id=network_id, name=name, driver="bridge", subnet=str(net), gateway=str(gw),
                              bridge="pybr-" + network_id[:10], created=_now(), labels=dict(labels or {}),
                              internal=internal)
            self.state.save_network(network)
        return network

    def remove(self, name: str) -> Network:
        """Deletes a user network (its bridge and rules too); refused while containers are connected."""
        with self.state.locked():
            network = self._get(name)
            if network.builtin:
                raise NetworkError(f"{network.name} is a pre-defined network and cannot be removed")
            if any(ep.network_id == network.id for ep in self.state.endpoints()):
                raise NetworkError(f"error while removing network: network {network.name} id {network.id} "
                                   "has active endpoints")
            self._teardown(network)
            self.state.delete_network(network)
        return network

    def prune(self) -> list[Network]:
        """Removes every user network no container is connected to (``docker network prune``)."""
        removed = []
        with self.state.locked():
            used = {ep.network_id for ep in self.state.endpoints()}
            for network in sorted(self._networks(), key=lambda n: n.name):
                if not network.builtin and network.name != BUILD_NETWORK and network.id not in used:
                    self._teardown(network)
                    self.state.delete_network(network)
                    removed.append(network)
        return removed

    def inspect(self, name: str) -> dict:
        """``docker network inspect``'s document."""
        with self.state.locked():
            network = self._get(name)
            endpoints = [ep for ep in self.state.endpoints() if ep.network_id == network.id]
        containers = {ep.container_id: {"Name": ep.name, "EndpointID": endpoint_id(ep), "MacAddress": ep.mac,
                                        "IPv4Address": f"{ep.ip}/{ep.prefix}" if ep.ip else "", "IPv6Address": ""}
                      for ep in endpoints}
        config = [{"Subnet": network.subnet, "Gateway": network.gateway}] if network.subnet else []
        return {"Name": network.name, "Id": network.id, "Created": network.created, "Scope": "local",
                "Driver": network.driver, "EnableIPv6": False,
                "IPAM": {"Driver": "default", "Options": None if network.builtin else {}, "Config": config},
                "Internal": network.internal, "Attachable": False, "Ingress": False,
                "ConfigFrom": {"Network": ""}, "ConfigOnly": False, "Containers": containers,
                "Options": {"com.docker.network.bridge.name": network.bridge} if network.bridge else {},
                "Labels": dict(network.labels)}

    # -- endpoints -----------------------------------------------------------------------------------

    def endpoint(self, container_id: str) -> Endpoint | None:
        return self.state.endpoint(container_id)

    def endpoints(self, network: str | None = None) -> list[Endpoint]:
        eps = self.state.endpoints()
        return [ep for ep in eps if network is None or network in (ep.network, ep.network_id)]

    def connect(self, container_id: str, network: str = "bridge", *, name: str = "", aliases=(), hostname: str = "",
                ports=(), publish_all: bool = False, exposed=(), hosts_path: str = "", resolv_path: str = "",
                extra_hosts=()) -> Endpoint:
        """Attaches a container (before it starts) and writes its hosts/resolv files; returns the endpoint
        whose ``netns`` the sandbox joins (empty for host and none).

        ``ports``: PortBinding-like items (``container_port``, ``protocol`` or ``proto``, ``host_ip``,
        ``host_port``); ``publish_all`` (``-P``) adds a free host port for every ``exposed`` "port/proto"
        not bound already; ``extra_hosts``: (name, ip) pairs or objects with ``.name``/``.ip``."""
        ports = _bindings(ports, exposed if publish_all else ())
        extra_hosts = tuple((h.name, h.ip) if hasattr(h, "ip") else (str(h[0]), str(h[1])) for h in extra_hosts)
        with self.state.locked():
            stale = self.state.endpoint(container_id)
            if stale is not None:
                self._release(stale)
            target = self._get(network)
            endpoint = self._attach(target, container_id, name=name, aliases=tuple(aliases),
                                    hostname=hostname or container_id[:12], ports=tuple(ports),
                                    hosts_path=hosts_path, resolv_path=resolv_path,
                                    extra_hosts=extra_hosts)
            if target.resolves_names:
                self._refresh_hosts(target.id)
        return endpoint

    def disconnect(self, container_id: str) -> None:
        """Releases everything of the container's endpoint (idempotent, from persisted data only)."""
        with self.state.locked():
            endpoint = self.state.endpoint(container_id)
            if endpoint is None:
                system.remove_netns(str(self.netns_dir / container_id))
                return
            self._release(endpoint)
            network = next((n for n in self._networks(materialize=False) if n.id == endpoint.network_id), None)
            if network is not None and network.resolves_names:
                self._refresh_hosts(network.id)

    def sweep(self, live_container_ids, *, deep: bool = False) -> list[str]:
        """Releases endpoints of containers neither in ``live_container_ids`` nor still being started by a
        live process (and of builds whose process is gone) and namespace files nothing refers to; returns
        the released ids.  Cheap when there is nothing to do (it runs before every container command):
        iptables is only read when something was released or with ``deep`` (rules no record names)."""
        live = set(live_container_ids)
        released: list[str] = []
        if not self.state.endpoints_dir.is_dir() and not self.netns_dir.is_dir() and not deep:
            return released
        with self.state.locked():
            refresh = set()
            for endpoint in self.state.endpoints():
                if endpoint.container_id.startswith("build-"):
                    alive = _owner_alive(endpoint)
                else:
                    alive = endpoint.container_id in live or _owner_alive(endpoint)
                if not alive:
                    self._release(endpoint)
                    released.append(endpoint.container_id)
                    refresh.add(endpoint.network_id)
            kept = {ep.container_id for ep in self.state.endpoints()}
            orphans = [e for e in os.listdir(self.netns_dir) if e not in kept] if self.netns_dir.is_dir() else []
            for entry in orphans:
                system.remove_netns(str(self.netns_dir / entry))
            networks = self._networks(materialize=False)
            if deep or released or orphans:
                known = {f"{self.tag}:{cid}" for cid in kept} | {f"{self.tag}:net:{n.id}" for n in networks}
                saved = firewall.parse_save(system.iptables_save())
                stray = {owner for owner in firewall.owners(saved) if owner.startswith(self.tag + ":")} - known
                if stray:
                    firewall.remove_tagged(stray, saved)
            for network in networks:
                if network.id in refresh and network.resolves_names:
                    self._refresh_hosts(network.id)
        return released

    # -- build RUN steps -----------------------------------------------------------------------------

    def attach_build(self) -> Endpoint:
        """A throwaway namespace on the build bridge with NAT to the outside, for one RUN step."""
        token = secrets.token_hex(8)
        with self.state.locked():
            for stale in self.state.endpoints():       # of builders killed mid-RUN
                if stale.owner_pid and not _owner_alive(stale):
                    self._release(stale)
            network = self._get(BUILD_NETWORK, build=True)
            return self._attach(network, f"build-{token}", name="", aliases=(), hostname="", ports=(),
                                hosts_path="", resolv_path="", extra_hosts=(), veth_id=token)

    def detach_build(self, endpoint: Endpoint) -> None:
        with self.state.locked():
            self._release(endpoint)

    # -- internals -----------------------------------------------------------------------------------

    def _networks(self, materialize: bool = True) -> list[Network]:
        networks = self.state.networks()
        if materialize:
            names = {n.name for n in networks}
            for builtin in BUILTIN_NETWORKS:
                if builtin not in names:
                    networks.append(self._builtin(builtin, networks))
        return networks

    def _builtin(self, name: str, networks: list[Network]) -> Network:
        network_id = hashlib.sha256(secrets.token_bytes(32)).hexdigest()
        if name in ("host", "none"):
            network = Network(id=network_id, name=name, driver="host" if name == "host" else "null", created=_now())
        else:
            net, gw = self._address_plan(networks, None, None, preferred=_PREFERRED[name])
            network = Network(id=network_id, name=name, driver="bridge", subnet=str(net), gateway=str(gw),
                              bridge=self._builtin_bridge(name), created=_now())
        self.state.save_network(network)
        return network

    def _builtin_bridge(self, name: str) -> str:
        """``pybr0`` / ``pybr-build`` for the default store root; other roots (tests) get bridges of their own
        names, so two roots in one network namespace never share a bridge (their address plans differ)."""
        if name in self.bridge_names:
            return self.bridge_names[name]
        if self.root.resolve() == Path(DEFAULT_ROOT):
            return DEFAULT_BRIDGE if name == "bridge" else BUILD_BRIDGE
        return ("pybr" if name == "bridge" else "pybrb") + self.tag[:10]

    def _get(self, name: str, *, build: bool = False) -> Network:
        """A network users may name (the build network only when asked for by ``build``)."""
        if build:
            networks = self.state.networks()
            found = [n for n in networks if n.name == BUILD_NETWORK]
            return found[0] if found else self._builtin(BUILD_NETWORK, networks)
        networks = [n for n in self._networks() if n.name != BUILD_NETWORK]
        for network in networks:
            if network.name == name:
                return network
        for network in networks:
            if network.id == name:
                return network
        matches = [n for n in networks if name and n.id.startswith(name)]
        if len(matches) == 1:
            return matches[0]
        raise NoSuchNetwork(name)

    def _address_plan(self, networks, subnet, gateway, preferred=None):
        taken = [ipaddress.ip_network(n.subnet) for n in networks if n.subnet]
        if subnet:
            try:
                net = ipaddress.ip_network(subnet, strict=False)
            except ValueError:
                raise NetworkError(f"invalid CIDR address: {subnet}") from None
            if net.version != 4:
                raise NetworkError("IPv6 networks are not supported")
            if net.prefixlen > 30:
                raise NetworkError(f"subnet {subnet} is too small")
            if any(net.overlaps(t) for t in taken):
                raise NetworkError("Pool overlaps with other one on this address space")
        else:
            if gateway:
                raise NetworkError("a gateway needs a --subnet")
            busy = taken + _host_routes()
            candidates = ([ipaddress.ip_network(preferred)] if preferred else []) + list(_pools())
            net = next((c for c in candidates if not any(c.overlaps(b) for b in busy)), None)
            if net is None:
                raise NetworkError("could not find an available, non-overlapping IPv4 address pool among the "
                                   "defaults to assign to the network")
        if gateway:
            try:
                gw = ipaddress.ip_address(gateway)
            except ValueError:
                raise NetworkError(f"invalid gateway address: {gateway}") from None
            if gw not in net or gw in (net.network_address, net.broadcast_address):
                raise NetworkError(f"no matching subnet for gateway {gateway}")
        else:
            gw = net.network_address + 1
        return net, gw

    def _ensure_bridge(self, network: Network) -> Network:
        """The network's bridge, its address, sysctls and rules (once; a missing bridge is re-made)."""
        if system.link_exists(network.bridge):
            return network
        subnet = ipaddress.ip_network(network.subnet)
        if any(subnet.overlaps(route) for route in _host_routes()):   # taken since the network was planned
            if not network.builtin and network.name != BUILD_NETWORK:
                raise NetworkError(f"the subnet {network.subnet} of network {network.name} is now routed on this "
                                   "host; remove the network and create it again")
            others = [n for n in self.state.networks() if n.id != network.id]
            net, gw = self._address_plan(others, None, None)
            network = replace(network, subnet=str(net), gateway=str(gw))
            self.state.save_network(network)
        prefix = ipaddress.ip_network(network.subnet).prefixlen
        system.ip_batch([f"link add {network.bridge} type bridge",
                         f"addr add {network.gateway}/{prefix} dev {network.bridge}",
                         f"link set {network.bridge} up"])
        system.set_sysctl("net.ipv4.ip_forward", "1")
        system.set_sysctl(f"net.ipv4.conf.{network.bridge}.route_localnet", "1")
        saved = firewall.parse_save(system.iptables_save())
        firewall.ensure_base(saved)
        owner = f"{self.tag}:net:{network.id}"
        if owner in firewall.owners(saved):
            firewall.remove_tagged({owner}, saved)
        system.iptables_restore(firewall.network_rules(network, owner))
        return network

    def _teardown(self, network: Network) -> None:
        if network.bridge and system.link_exists(network.bridge):
            system.ip_batch([f"link del {network.bridge}"], check=False)
        owner = f"{self.tag}:net:{network.id}"
        saved = firewall.parse_save(system.iptables_save())
        if owner in firewall.owners(saved):
            firewall.remove_tagged({owner}, saved)

    def _allocate_ip(self, network: Network) -> ipaddress.IPv4Address:
        """The first free address after the last one given out (host-local's rule: an address just freed
        is not reused at once, while the kernel may still be tearing its old namespace down)."""
        net = ipaddress.ip_network(network.subnet)
        used = {ep.ip for ep in self.state.endpoints() if ep.network_id == network.id}
        used.add(network.gateway)
        last_file = self.state.dir / f"{network.id}.last-ip"
        try:
            last = int(ipaddress.ip_address(last_file.read_text().strip()))
        except (OSError, ValueError):
            last = int(net.network_address)
        first, final = int(net.network_address) + 1, int(net.broadcast_address) - 1
        size = final - first + 1
        start = min(max(last + 1, first), final + 1)
        for step in range(size):
            address = ipaddress.ip_address(first + (start - first + step) % size)
            if str(address) not in used:
                last_file.write_text(str(address))
                return address
        raise NetworkError(f"no available IPv4 addresses on network {network.name}")

    def _resolve_ports(self, bindings: tuple[PortBinding, ...]) -> tuple[PublishedPort, ...]:
        from .ports import check_host_ip, pick_port, port_free

        taken = {(p.protocol, p.host_port) for ep in self.state.endpoints() for p in ep.ports}
        out = []
        for b in bindings:
            check_host_ip(b.host_ip)
            if b.host_ip and not b.host_port:
                port_free(0, b.protocol, b.host_ip)         # the address must be this host's
            host_ip = b.host_ip or "0.0.0.0"
            if b.host_port and not b.host_port_end:
                if (b.protocol, b.host_port) in taken or not port_free(b.host_port, b.protocol, b.host_ip):
                    raise NetworkError(f"Bind for {host_ip}:{b.host_port} failed: port is already allocated")
                port = b.host_port
            else:
                port = pick_port(b.protocol, b.host_ip, taken, (b.host_port, b.host_port_end) if b.host_port_end
                                 else None)
            taken.add((b.protocol, port))
            out.append(PublishedPort(b.container_port, b.protocol, host_ip, port))
        return tuple(out)

    def _attach(self, network: Network, container_id: str, *, name, aliases, hostname, ports, hosts_path,
                resolv_path, extra_hosts, veth_id: str = "") -> Endpoint:
        base = dict(container_id=container_id, network=network.name, network_id=network.id, name=name,
                    aliases=aliases, hostname=hostname, hosts_path=hosts_path, resolv_path=resolv_path,
                    extra_hosts=extra_hosts, owner_pid=os.getpid(), owner_start=_process_start(os.getpid()))
        if network.driver != "bridge":
            endpoint = Endpoint(**base)
            self.state.save_endpoint(endpoint)
            etchosts.write_in_place(hosts_path, etchosts.hosts_text(endpoint, host_network=network.driver == "host"))
            etchosts.write_in_place(resolv_path, etchosts.resolv_text(network.name if network.driver == "host"
                                                                      else "none"))
            return endpoint
        network = self._ensure_bridge(network)
        address = self._allocate_ip(network)
        prefix = ipaddress.ip_network(network.subnet).prefixlen
        endpoint = Endpoint(**base, netns=str(self.netns_dir / container_id), ip=str(address), prefix=prefix,
                            gateway=network.gateway, mac="02:42:" + ":".join(f"{b:02x}" for b in address.packed),
                            veth="pyv" + (veth_id or secrets.token_hex(6))[:12], bridge=network.bridge,
                            ports=self._resolve_ports(ports))
        self.state.save_endpoint(endpoint)       # first: whatever is made next can be found and undone
        try:
            self._wire(endpoint, network)
            if endpoint.ports:
                system.iptables_restore(firewall.port_rules(endpoint, f"{self.tag}:{container_id}"))
            if not network.resolves_names:
                etchosts.write_in_place(hosts_path, etchosts.hosts_text(endpoint))
            etchosts.write_in_place(resolv_path, etchosts.resolv_text("bridge"))
        except BaseException:
            self._release(endpoint)
            raise
        return endpoint

    @staticmethod
    def _wire(endpoint: Endpoint, network: Network) -> None:
        """Namespace, veth pair (eth0 inside, the host side on the bridge), addresses, routes: over netlink
        sockets, no process spawned."""
        from .netlink import Netlink

        inside = system.create_netns(endpoint.netns, netlink=True)
        try:
            with Netlink() as host:
                fd = os.open(endpoint.netns, os.O_RDONLY | os.O_CLOEXEC)
                try:
                    host.add_veth(endpoint.veth, "eth0", peer_mac=bytes.fromhex(endpoint.mac.replace(":", "")),
                                  peer_netns_fd=fd, master=host.index(network.bridge))
                finally:
                    os.close(fd)
                if endpoint.ports:
                    host.set_hairpin(host.index(endpoint.veth))
            inside.set_up(inside.index("lo"))
            eth0 = inside.index("eth0")
            subnet = ipaddress.ip_network(network.subnet)
            inside.add_address(eth0, endpoint.ip, endpoint.prefix, str(subnet.broadcast_address))
            inside.set_up(eth0)
            inside.add_default_route(network.gateway, eth0)
        except OSError as err:
            raise NetworkError(f"cannot set up the network of {endpoint.container_id[:12]}: {err.strerror or err}") \
                from None
        finally:
            inside.close()

    def _release(self, endpoint: Endpoint) -> None:
        """Unmounting the namespace file is enough for the links: the kernel then destroys the namespace
        and the veth pair with it (asynchronously; ``ip link del`` would cost ~20 ms of the caller's time).
        A veth whose namespace was already gone is deleted explicitly."""
        if endpoint.ports:
            owner = f"{self.tag}:{endpoint.container_id}"
            rules = firewall.port_rules(endpoint, owner)
            try:                                 # the rules as added: one iptables-restore
                system.iptables_restore({t: ["-D " + r[3:] for r in lines] for t, lines in rules.items()})
            except NetworkError:                 # some were gone already: find what is left by its tag
                firewall.remove_tagged({owner})
        mounted = system.is_netns_mount(endpoint.netns)
        system.remove_netns(endpoint.netns)
        if not mounted and endpoint.veth and system.link_exists(endpoint.veth):
            system.ip_batch([f"link del {endpoint.veth}"], check=False)
        self.state.delete_endpoint(endpoint.container_id)
        for directory in (self.netns_dir, self.run_dir):     # no empty directories left in /run
            try:
                directory.rmdir()
            except OSError:
                break

    def _refresh_hosts(self, network_id: str) -> None:
        """Rewrites the hosts file of every container on a user network: its own lines plus its peers'."""
        members = [ep for ep in self.state.endpoints() if ep.network_id == network_id]
        for endpoint in members:
            if endpoint.hosts_path:
                try:
                    etchosts.write_in_place(endpoint.hosts_path, etchosts.hosts_text(endpoint, members))
                except OSError:
                    pass                         # the container's directory is being removed


def _bindings(ports, exposed) -> tuple[PortBinding, ...]:
    out = [p if isinstance(p, PortBinding) else
           PortBinding(int(p.container_port), getattr(p, "protocol", None) or getattr(p, "proto", "tcp"),
                       p.host_ip or "", int(p.host_port or 0), int(getattr(p, "host_port_end", 0) or 0))
           for p in ports]
    bound = {(p.container_port, p.protocol) for p in out}
    for item in exposed:
        port, _, proto = str(item).partition("/")
        key = (int(port), proto or "tcp")
        if key not in bound:
            bound.add(key)
            out.append(PortBinding(*key))
    return tuple(out)


def endpoint_id(endpoint: Endpoint) -> str:
    return hashlib.sha256(f"{endpoint.network_id}/{endpoint.container_id}".encode()).hexdigest()


def _process_start(pid: int) -> int:
    """The start time of ``pid`` (clock ticks since boot; 0: no such process) -- tells a reused pid apart."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return int(fh.read().rsplit(b")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return 0


def _owner_alive(endpoint: Endpoint) -> bool:
    """The process that made the endpoint is still running (a container being started, a build's RUN)."""
    if not endpoint.owner_pid:
        return False
    started = _process_start(endpoint.owner_pid)
    return bool(started) and (not endpoint.owner_start or started == endpoint.owner_start)


__all__ = ["NetworkManager", "endpoint_id", "BUILD_NETWORK", "DEFAULT_BRIDGE"]
