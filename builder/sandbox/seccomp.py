"""The seccomp filter of a RUN: Docker's default profile specialised for one process.

``build_filter`` is pure (capabilities, architecture, kernel version in; rules out) so what a RUN may
call is testable without loading anything; ``Syscalls.seccomp_load`` compiles the result with
libseccomp.  Like Docker, conditions are decided against the capabilities the process will hold, so
with the default set ``mount``, ``unshare``, ``keyctl``, ``bpf``, ``reboot`` ... fail with EPERM while
``chroot`` (CAP_SYS_CHROOT) and ``ptrace`` (kernel >= 4.8) are allowed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from . import seccomp_profile as profile
from .caps import CAP_NUMBERS


@dataclass(frozen=True, slots=True)
class ArgCheck:
    """Compare syscall argument ``index`` with ``value`` (``masked_eq``: ``arg & value == value_two``)."""

    index: int
    op: str
    value: int
    value_two: int = 0


@dataclass(frozen=True, slots=True)
class SeccompRule:
    """Allow ``syscall`` (``errno is None``) or fail it with ``errno``, when all ``args`` match."""

    syscall: str
    errno: int | None = None
    args: tuple[ArgCheck, ...] = ()


@dataclass(frozen=True, slots=True)
class SeccompFilter:
    default_errno: int
    arches: tuple[str, ...]
    rules: tuple[SeccompRule, ...]

    def allows(self, syscall: str) -> bool:
        """True if some rule may allow ``syscall`` (unconditionally or for some arguments)."""
        return any(r.syscall == syscall and r.errno is None for r in self.rules)

    def errno_for(self, syscall: str) -> int | None:
        """The errno an unconditional deny rule returns, the default errno if nothing matches,
        ``None`` if an unconditional allow rule exists."""
        for rule in self.rules:
            if rule.syscall == syscall and not rule.args:
                return rule.errno
        if self.allows(syscall):
            return None
        return self.default_errno


def _kernel_version(release: str) -> tuple[int, int]:
    parts = []
    for piece in release.split(".")[:2]:
        digits = "".join(ch for ch in piece if ch.isdigit()) or "0"
        parts.append(int(digits))
    while len(parts) < 2:
        parts.append(0)
    return parts[0], parts[1]


def build_filter(cap_mask: int, machine: str | None = None, kernel: str | None = None) -> SeccompFilter:
    """Docker's default profile for a process holding the capabilities in ``cap_mask``."""
    machine = machine or os.uname().machine
    version = _kernel_version(kernel or os.uname().release)
    native = profile.DOCKER_ARCH.get(machine, machine)
    sub_arches = profile.ARCH_MAP.get(machine, ())

    def has(cap: str) -> bool:
        return bool(cap_mask & (1 << CAP_NUMBERS[cap]))

    rules = [SeccompRule(name) for name in profile.ALLOWED]
    # Arch conditions are decided on the native arch (Go's GOARCH), as Docker does.
    for entry in profile.CONDITIONAL:
        if "caps" in entry and not all(has(c) for c in entry["caps"]):
            continue
        if "not_caps" in entry and any(has(c) for c in entry["not_caps"]):
            continue
        if "arches" in entry and native not in entry["arches"]:
            continue
        if "not_arches" in entry and native in entry["not_arches"]:
            continue
        if "min_kernel" in entry and version < entry["min_kernel"]:
            continue
        args = tuple(ArgCheck(*a) for a in entry.get("args", ()))
        for name in entry["names"]:
            rules.append(SeccompRule(name, entry.get("errno"), args))
    return SeccompFilter(profile.DEFAULT_ERRNO, tuple(sub_arches), tuple(rules))


__all__ = ["SeccompFilter", "SeccompRule", "ArgCheck", "build_filter"]
