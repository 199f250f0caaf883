"""The generated /etc/hosts and /etc/resolv.conf a RUN sees (bind-mounted read-only, never in a layer).

Contents follow BuildKit: hosts maps localhost and the sandbox hostname plus ``--add-host`` entries;
resolv.conf is the host's (systemd-resolved's upstream file when the host's points at the 127.0.0.53
stub) -- kept as is with the host network, and with loopback nameservers removed otherwise, falling
back to public resolvers when none remain.
"""

from __future__ import annotations

import ipaddress
import os

from .spec import HostEntry

_STUB_RESOLVER = "/run/systemd/resolve/resolv.conf"
_DEFAULT_NAMESERVERS = ("8.8.8.8", "8.8.4.4", "2001:4860:4860::8888", "2001:4860:4860::8844")


def hosts_file(hostname: str, extra: tuple[HostEntry, ...] | list[HostEntry] = ()) -> str:
    text = f"127.0.0.1\tlocalhost {hostname}\n::1\tlocalhost ip6-localhost ip6-loopback\n"
    return text + "".join(f"{entry.ip}\t{entry.name}\n" for entry in extra)


def _nameservers(text: str) -> list[str]:
    out = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0] == "nameserver":
            out.append(fields[1])
    return out


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address.split("%")[0]).is_loopback
    except ValueError:
        return False


def host_resolv_conf(path: str = "/etc/resolv.conf") -> str:
    """The host's resolver config, skipping systemd-resolved's local stub as BuildKit does."""
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as fh:
            text = fh.read()
    except OSError:
        return ""
    servers = _nameservers(text)
    if servers and all(s == "127.0.0.53" for s in servers) and os.path.exists(_STUB_RESOLVER):
        with open(_STUB_RESOLVER, encoding="utf-8", errors="surrogateescape") as fh:
            return fh.read()
    return text


def resolv_conf(network: str, host_text: str | None = None) -> str:
    text = host_resolv_conf() if host_text is None else host_text
    if network == "host":
        return text
    kept = [line for line in text.splitlines()
            if not (line.split()[:1] == ["nameserver"] and len(line.split()) > 1 and _is_loopback(line.split()[1]))]
    if not _nameservers("\n".join(kept)):
        kept += [f"nameserver {ns}" for ns in _DEFAULT_NAMESERVERS]
    return "\n".join(kept) + "\n"


__all__ = ["hosts_file", "resolv_conf", "host_resolv_conf"]
