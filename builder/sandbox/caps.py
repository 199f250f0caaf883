"""Capabilities: Docker's default set, and dropping everything else.

A RUN under BuildKit holds exactly Docker's default set (CapEff ``00000000a80425fb``).  The bounding
set is cut to it (so nothing can regain more through a file capability), effective and permitted are
set to it, and inheritable and ambient are left empty -- Docker and BuildKit stopped granting
inheritable capabilities in 2022 (CVE-2022-24769), since with them an ``execve`` of a binary carrying
inheritable file capabilities could raise a non-root user's permitted set.  A non-root USER loses the
effective/permitted sets at ``execve`` as the kernel's rules say; the bounding set stays.
"""

from __future__ import annotations

CAP_NAMES = (
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID", "SETPCAP",
    "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER",
    "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE",
    "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP",
    "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF",
    "CHECKPOINT_RESTORE",
)
CAP_NUMBERS = {f"CAP_{name}": number for number, name in enumerate(CAP_NAMES)}

DEFAULT_CAPS = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_SETGID", "CAP_SETUID",
    "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_NET_RAW", "CAP_SYS_CHROOT", "CAP_MKNOD", "CAP_AUDIT_WRITE",
    "CAP_SETFCAP",
)


def cap_mask(names) -> int:
    """The 64-bit mask of capability names (``CAP_CHOWN`` ...)."""
    mask = 0
    for name in names:
        mask |= 1 << CAP_NUMBERS[name]
    return mask


DEFAULT_MASK = cap_mask(DEFAULT_CAPS)  # 0xa80425fb


def capability_set(add=(), drop=(), last: int | None = None) -> int:
    """Docker's capability tweak: the default set plus ``add`` minus ``drop``; ``ALL`` in ``add`` starts
    from every capability this kernel has, ``ALL`` in ``drop`` from none (then only ``add`` is kept)."""
    top = last_cap() if last is None else last
    every = (1 << (top + 1)) - 1
    names_add = [n for n in add if n != "ALL"]
    names_drop = [n for n in drop if n != "ALL"]
    if "ALL" in add:
        return every & ~cap_mask(names_drop)
    base = 0 if "ALL" in drop else DEFAULT_MASK
    return ((base & ~cap_mask(names_drop)) | cap_mask(names_add)) & every


def last_cap(proc: str = "/proc") -> int:
    """The highest capability number this kernel knows (``/proc/sys/kernel/cap_last_cap``)."""
    try:
        with open(f"{proc}/sys/kernel/cap_last_cap") as fh:
            return int(fh.read().strip())
    except (OSError, ValueError):
        return len(CAP_NAMES) - 1


def restrict_capabilities(sys, keep: int = DEFAULT_MASK, last: int | None = None, inheritable: bool = False) -> None:
    """Cut the bounding set to ``keep``, clear ambient, and set effective = permitted = ``keep`` with an
    empty inheritable set (``inheritable``: ``keep`` too, for the insecure mode's ambient set).  Needs
    CAP_SETPCAP, so it runs before the uid changes."""
    from .syscalls import PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, PR_CAPBSET_DROP

    top = last_cap() if last is None else last
    for cap in range(top + 1):
        if not keep & (1 << cap):
            sys.prctl(PR_CAPBSET_DROP, cap)
    sys.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)
    sys.capset(keep, keep, keep if inheritable else 0)


__all__ = ["DEFAULT_CAPS", "DEFAULT_MASK", "CAP_NUMBERS", "cap_mask", "capability_set", "restrict_capabilities", "last_cap"]
