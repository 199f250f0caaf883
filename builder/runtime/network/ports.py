"""``-p`` parsing with docker's rules and texts, and free host ports for ``-P`` / ``-p ctrport``."""

from __future__ import annotations

import errno
import ipaddress
import socket

from .errors import NetworkError
from .model import PortBinding

PROTOCOLS = ("tcp", "udp", "sctp")


def _port_range(text: str, what: str) -> tuple[int, int]:
    start, dash, end = text.partition("-")
    try:
        first = int(start)
        last = int(end) if dash else first
    except ValueError:
        raise NetworkError(f"invalid {what}: {text}") from None
    if not (0 < first <= 65535 and 0 < last <= 65535) or last < first:
        raise NetworkError(f"invalid {what}: {text}")
    return first, last


def parse_publish(spec: str) -> tuple[PortBinding, ...]:
    """``[ip:][hostport[-end]:]ctrport[-end][/proto]`` -> one binding per container port (docker's
    nat.ParsePortSpec)."""
    rest, slash, proto = spec.rpartition("/") if "/" in spec else (spec, "", "tcp")
    proto = proto.lower() or "tcp"
    if proto not in PROTOCOLS:
        raise NetworkError(f"invalid proto: {proto}")
    host_ip = ""
    if rest.startswith("["):                        # [::1]:8080:80
        close = rest.find("]")
        if close < 0:
            raise NetworkError(f"invalid ip address: {rest}")
        host_ip, rest = rest[1:close], rest[close + 1:].lstrip(":")
        parts = rest.split(":")
        parts = [""] + parts if len(parts) == 1 else parts
    else:
        parts = rest.split(":")
        if len(parts) == 3:
            host_ip, parts = parts[0], parts[1:]
        elif len(parts) > 3:
            raise NetworkError(f"invalid port format: {spec}")
    if len(parts) == 1:
        host_text, ctr_text = "", parts[0]
    else:
        host_text, ctr_text = parts
    if host_ip:
        try:
            ipaddress.ip_address(host_ip)
        except ValueError:
            raise NetworkError(f"invalid ip address: {host_ip}") from None
    if not ctr_text:
        raise NetworkError(f"no port specified: {spec}<empty>")
    c_first, c_last = _port_range(ctr_text, "containerPort")
    if host_text:
        h_first, h_last = _port_range(host_text, "hostPort")
        count = c_last - c_first + 1
        if h_last - h_first + 1 != count and not (count == 1 and h_last >= h_first):
            raise NetworkError(f"invalid ranges specified for container and host Ports: {ctr_text} and {host_text}")
        if count == 1 and h_last != h_first:       # docker: a host range for one port = any free one in it
            return (PortBinding(c_first, proto, host_ip, h_first, h_last),)
        return tuple(PortBinding(c_first + i, proto, host_ip, h_first + i) for i in range(count))
    return tuple(PortBinding(port, proto, host_ip, 0) for port in range(c_first, c_last + 1))


def port_free(port: int, protocol: str, host_ip: str = "") -> bool:
    """True when nothing on this host (in this network namespace) holds ``port``; a ``host_ip`` that is
    not an address of this host is an error, as docker's bind fails."""
    kind = socket.SOCK_DGRAM if protocol == "udp" else socket.SOCK_STREAM
    with socket.socket(socket.AF_INET, kind) as sock:
        try:
            sock.bind((host_ip or "0.0.0.0", port))
        except OSError as err:
            if err.errno == errno.EADDRNOTAVAIL:
                raise NetworkError(f"listen {protocol}4 {host_ip}:{port}: bind: cannot assign requested address") \
                    from None
            return err.errno != errno.EADDRINUSE
    return True


def check_host_ip(host_ip: str) -> None:
    """Ports are published through iptables (IPv4): an IPv6 host address is refused up front."""
    if host_ip and ipaddress.ip_address(host_ip).version == 6:
        raise NetworkError(f"publishing on an IPv6 address is not supported: {host_ip}")


def ephemeral_range() -> tuple[int, int]:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as fh:
            low, high = fh.read().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def pick_port(protocol: str, host_ip: str, taken: set[tuple[str, int]], span: tuple[int, int] | None = None) -> int:
    """A free host port: from ``span`` when given, else one the kernel hands out from its ephemeral range
    (as docker's allocator); ``taken`` = (protocol, port) pairs already published by other containers."""
    if span is None:
        kind = socket.SOCK_DGRAM if protocol == "udp" else socket.SOCK_STREAM
        for _ in range(64):
            with socket.socket(socket.AF_INET, kind) as sock:
                sock.bind(("0.0.0.0", 0))
                port = sock.getsockname()[1]
            if (protocol, port) not in taken:
                return port
        span = ephemeral_range()
    for port in range(span[0], span[1] + 1):
        if (protocol, port) not in taken and port_free(port, protocol, host_ip):
            return port
    raise NetworkError(f"no free host port in {span[0]}-{span[1]} for {protocol}")


__all__ = ["parse_publish", "pick_port", "port_free", "check_host_ip", "PROTOCOLS"]
