"""A container's /etc/hosts and /etc/resolv.conf, written on the host and bind-mounted into it.

Files are rewritten IN PLACE (same inode): a running container sees its bind-mounted hosts file
change when a peer joins or leaves its network.
"""

from __future__ import annotations

import os

from .model import Endpoint

BASE_HOSTS = ("127.0.0.1\tlocalhost\n"
              "::1\tlocalhost ip6-localhost ip6-loopback\n"
              "fe00::0\tip6-localnet\n"
              "ff00::0\tip6-mcastprefix\n"
              "ff02::1\tip6-allnodes\n"
              "ff02::2\tip6-allrouters\n")


def _names(endpoint: Endpoint) -> list[str]:
    names = [endpoint.name, *endpoint.aliases, endpoint.container_id[:12], endpoint.hostname]
    seen: list[str] = []
    for name in names:
        if name and name not in seen:
            seen.append(name)
    return seen


def hosts_text(own: Endpoint, peers: list[Endpoint] = (), *, host_network: bool = False) -> str:
    """docker's layout: the base entries, --add-host entries, the container's own address, then (user
    networks) one line per other container on the network: ``ip name aliases... short-id``."""
    if host_network:
        try:
            with open("/etc/hosts") as fh:
                text = fh.read()
        except OSError:
            text = BASE_HOSTS
        if text and not text.endswith("\n"):
            text += "\n"
    else:
        text = BASE_HOSTS
    text += "".join(f"{ip}\t{name}\n" for name, ip in own.extra_hosts)
    if own.ip:
        text += f"{own.ip}\t{own.hostname or own.container_id[:12]}\n"
    for peer in sorted(peers, key=lambda p: (p.name, p.container_id)):
        if peer.ip and peer.container_id != own.container_id:
            text += f"{peer.ip}\t{' '.join(_names(peer))}\n"
    return text


def resolv_text(network: str) -> str:
    """The host's resolver config; on bridge networks without loopback nameservers (docker's rule:
    8.8.8.8/8.8.4.4 when none are left)."""
    from ...sandbox.etcfiles import resolv_conf

    return resolv_conf("host" if network == "host" else "bridge")


def write_in_place(path: str, text: str) -> None:
    """Rewrites ``path`` keeping its inode (open r+, write, truncate), creating it when missing."""
    if not path:
        return
    data = text.encode()
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    with os.fdopen(fd, "r+b") as fh:
        fh.write(data)
        fh.truncate(len(data))


__all__ = ["hosts_text", "resolv_text", "write_in_place", "BASE_HOSTS"]
