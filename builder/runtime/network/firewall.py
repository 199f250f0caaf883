"""iptables rules: our own chains (found and removed by name) and per-owner rules tagged with a comment.

filter: FORWARD -> PYBUILD-FORWARD (traffic within a bridge, out of and into bridges; none between
two of our bridges).  nat: PREROUTING/OUTPUT (to a local address) -> PYBUILD (DNAT of published
ports, 127.0.0.1 included thanks to route_localnet on the bridges), POSTROUTING ->
PYBUILD-POSTROUTING (MASQUERADE of each subnet going out, and of 127.0.0.0/8 sources sent to a
bridge after DNAT).  Every rule of a network carries ``pybuild:net:<id>``, every rule of a container
``pybuild:<container id>``, so they can be removed from persisted data alone.
"""

from __future__ import annotations

import re
import shlex

from . import system
from .model import Endpoint, Network

BRIDGE_PATTERN = "pybr+"
FORWARD_TAIL = (f"-A PYBUILD-FORWARD -i {BRIDGE_PATTERN} -o {BRIDGE_PATTERN} -j DROP",
                f"-A PYBUILD-FORWARD -i {BRIDGE_PATTERN} -j ACCEPT",
                f"-A PYBUILD-FORWARD -o {BRIDGE_PATTERN} -j ACCEPT")
BASE = {
    "filter": {"chains": ("PYBUILD-FORWARD",),
               "jumps": ("-I FORWARD -j PYBUILD-FORWARD",),
               "rules": FORWARD_TAIL},
    "nat": {"chains": ("PYBUILD", "PYBUILD-POSTROUTING"),
            "jumps": ("-A PREROUTING -m addrtype --dst-type LOCAL -j PYBUILD",
                      "-A OUTPUT -m addrtype --dst-type LOCAL -j PYBUILD",
                      "-A POSTROUTING -j PYBUILD-POSTROUTING"),
            "rules": (f"-A PYBUILD-POSTROUTING -s 127.0.0.0/8 -o {BRIDGE_PATTERN} -j MASQUERADE",)},
}


def _tag(owner: str) -> str:
    return f"-m comment --comment pybuild:{owner}"


def parse_save(text: str) -> dict[str, list[str]]:
    """iptables-save output -> {table: [lines]} (chain declarations and rules)."""
    tables: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        if line.startswith("*"):
            current = tables.setdefault(line[1:], [])
        elif current is not None and line.startswith((":", "-A ")):
            current.append(line)
    return tables


def _normal(rule: str) -> str:
    """A rule as iptables-save prints it, for comparison (quotes and -m tcp/udp aside)."""
    words = [w for w in shlex.split(rule)]
    out, skip = [], False
    for i, word in enumerate(words):
        if skip:
            skip = False
            continue
        if word == "-m" and i + 1 < len(words) and words[i + 1] in ("tcp", "udp", "sctp"):
            skip = True
            continue
        out.append(word)
    return " ".join(out)


def ensure_base(saved: dict[str, list[str]] | None = None) -> None:
    """Creates our chains and the jumps to them when missing (one iptables-save, at most one restore)."""
    saved = parse_save(system.iptables_save()) if saved is None else saved
    todo: dict[str, list[str]] = {}
    for table, parts in BASE.items():
        lines = saved.get(table, [])
        have_chains = {line[1:].split()[0] for line in lines if line.startswith(":")}
        have_rules = {_normal(line) for line in lines if line.startswith("-A ")}
        out = todo.setdefault(table, [])
        for chain in parts["chains"]:
            if chain not in have_chains:
                out.append(f":{chain} - [0:0]")
        for rule in parts["jumps"] + parts["rules"]:
            as_append = "-A " + rule[3:] if rule.startswith("-I ") else rule
            if _normal(as_append) not in have_rules:
                out.append(rule)
    system.iptables_restore(todo)


def network_rules(network: Network, owner: str) -> dict[str, list[str]]:
    """Traffic within the bridge is accepted; an ``--internal`` network has no way in or out (docker's)."""
    tag = _tag(owner)
    bridge = network.bridge
    if network.internal:
        return {"filter": [f"-I PYBUILD-FORWARD -i {bridge} ! -o {bridge} {tag} -j DROP",
                           f"-I PYBUILD-FORWARD -o {bridge} ! -i {bridge} {tag} -j DROP",
                           f"-I PYBUILD-FORWARD -i {bridge} -o {bridge} {tag} -j ACCEPT"]}
    return {"filter": [f"-I PYBUILD-FORWARD -i {bridge} -o {bridge} {tag} -j ACCEPT"],
            "nat": [f"-A PYBUILD-POSTROUTING -s {network.subnet} ! -o {bridge} {tag} -j MASQUERADE",
                    # hairpin: a container reaching a published port of its own bridge through a host address
                    f"-A PYBUILD-POSTROUTING -s {network.subnet} -o {bridge} -m conntrack --ctstate DNAT {tag} "
                    "-j MASQUERADE"]}


def port_rules(endpoint: Endpoint, owner: str) -> dict[str, list[str]]:
    tag = _tag(owner)
    rules = []
    for port in endpoint.ports:
        dest = f"-d {port.host_ip}/32 " if port.host_ip not in ("", "0.0.0.0") else ""
        rules.append(f"-A PYBUILD {dest}-p {port.protocol} -m {port.protocol} --dport {port.host_port} {tag} "
                     f"-j DNAT --to-destination {endpoint.ip}:{port.container_port}")
    return {"nat": rules}


_COMMENT = re.compile(r'--comment "?pybuild:([^"\s]+)"?')


def owners(saved: dict[str, list[str]]) -> set[str]:
    """Every ``pybuild:<owner>`` tag found in the rules."""
    return {m.group(1) for lines in saved.values() for line in lines for m in [_COMMENT.search(line)] if m}


def remove_tagged(wanted, saved: dict[str, list[str]] | None = None) -> None:
    """Deletes every rule whose tag ``wanted(owner)`` accepts (a set of owners or a predicate)."""
    accept = wanted if callable(wanted) else (lambda owner, s=set(wanted): owner in s)
    saved = parse_save(system.iptables_save()) if saved is None else saved
    todo = {table: ["-D " + line[3:] for line in lines if line.startswith("-A ")
                    for m in [_COMMENT.search(line)] if m and accept(m.group(1))]
            for table, lines in saved.items()}
    system.iptables_restore(todo)


__all__ = ["ensure_base", "network_rules", "port_rules", "owners", "remove_tagged", "parse_save"]
