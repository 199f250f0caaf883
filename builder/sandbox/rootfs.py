"""The root filesystem of a RUN: overlay, /proc, /dev, /sys, /etc files, extra mounts, pivot_root.

Runs inside the sandbox's own mount namespace (so the host never sees any of these mounts and they
all vanish with the namespace) and reproduces what BuildKit's runc spec mounts: /proc with Docker's
masked and read-only paths, a 64 MiB /dev tmpfs holding bind mounts of the host's null, zero, full,
random, urandom and tty plus devpts, shm and mqueue, a read-only /sys with the cgroup hierarchies
read-only, and read-only bind mounts of the generated /etc/hosts and /etc/resolv.conf.

Mount points come from the image, or from the sandbox's stub layer (a lower layer *below* the image
that holds empty /proc, /dev, /sys, /etc/hosts ...), so they exist without anything being created in
the upper dir.  Only a path the image hides (whiteout, symlink elsewhere) is created through the merged
view; ``StubRecorder`` records it and the parent removes it from the upper dir afterwards.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from . import overlay as _overlay
from .paths import StubRecorder
from .runmounts import mount_all
from .spec import RunLayout, RunSpec
from .syscalls import (MNT_DETACH, MS_BIND, MS_NODEV, MS_NOEXEC, MS_NOSUID, MS_PRIVATE, MS_RDONLY, MS_REC,
                       MS_REMOUNT, MS_SLAVE, MS_STRICTATIME)

MASKED_PATHS = ("/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware",
                "/sys/devices/virtual/powercap")
READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")
DEVICES = ("null", "zero", "full", "random", "urandom", "tty")
# BuildKit's insecure mode adds these (when the host has them) and every loop device.
INSECURE_DEVICES = ("kmsg", "cuse", "fuse", "kvm", "net/tun", "loop-control")
DEV_LINKS = (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
             ("stderr", "/proc/self/fd/2"), ("ptmx", "pts/ptmx"))
_SAFE = MS_NOSUID | MS_NOEXEC | MS_NODEV


@dataclass(frozen=True, slots=True)
class CgroupMount:
    """One cgroup hierarchy to show read-only: the host directory of our own cgroup in it, and its
    name under /sys/fs/cgroup (``""`` when the host mounts a single cgroup2 tree there)."""

    name: str
    source: str


@dataclass(frozen=True, slots=True)
class HostView:
    """What the mount plan needs to know about the host: its device nodes and cgroup hierarchies."""

    devices: tuple[str, ...] = DEVICES
    insecure_devices: tuple[str, ...] = ()
    cgroups: tuple[CgroupMount, ...] = ()
    cgroup_links: tuple[tuple[str, str], ...] = ()


# --- parent side: the stub layer ----------------------------------------------------------------
def make_stub_layer(spec: RunSpec, layout: RunLayout) -> None:
    """Create the sandbox's bottom lower layer: empty mount points for everything mounted in a RUN."""
    root = layout.stubs
    os.makedirs(root, mode=0o755, exist_ok=True)
    for name in ("proc", "dev", "sys", "etc"):
        os.makedirs(os.path.join(root, name), mode=0o755, exist_ok=True)
    targets = [(t, False) for t in ("/etc/hosts", "/etc/resolv.conf")]
    targets += [("/etc/hostname", False)] if spec.hostname_file else []
    targets += [(d.target, False) for d in spec.devices]
    targets += [(b.target, os.path.isdir(b.source)) for b in spec.binds]
    targets += [(t.target, True) for t in spec.tmpfs]
    targets += [(o.target, o.is_dir) for o in spec.overlays]
    targets += [(x.target, False) for x in spec.secrets if x.target]
    for target, is_dir in targets:
        path = os.path.join(root, os.path.normpath(target).lstrip("/"))
        if path == root or os.path.lexists(path):
            continue
        os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
        if is_dir:
            os.makedirs(path, mode=0o755, exist_ok=True)
        else:
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o644))


# --- sandbox side -------------------------------------------------------------------------------
def read_host_view(proc: str = "/proc", dev: str = "/dev") -> HostView:
    """The host's device nodes and the cgroup directories of the calling process."""
    devices = tuple(d for d in DEVICES if os.path.exists(os.path.join(dev, d)))
    insecure = tuple(d for d in INSECURE_DEVICES + _loop_devices(dev) if os.path.exists(os.path.join(dev, d)))
    cgroups, links = _cgroup_view(proc)
    return HostView(devices, insecure, cgroups, links)


def _loop_devices(dev: str) -> tuple[str, ...]:
    try:
        return tuple(sorted((n for n in os.listdir(dev) if n.startswith("loop") and n[4:].isdigit()),
                            key=lambda n: int(n[4:])))
    except OSError:
        return ()


def _unescape(field: str) -> str:
    return field.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")


def _cgroup_view(proc: str, base: str = "/sys/fs/cgroup") -> tuple[tuple[CgroupMount, ...], tuple]:
    try:
        with open(f"{proc}/self/mountinfo") as fh:
            mountinfo = fh.read().splitlines()
        with open(f"{proc}/self/cgroup") as fh:
            memberships = [line.split(":", 2) for line in fh.read().splitlines() if line.count(":") >= 2]
    except OSError:
        return (), ()
    found = []
    for line in mountinfo:
        left, _, right = line.partition(" - ")
        lf, rf = left.split(), right.split()
        if len(lf) < 5 or len(rf) < 3 or rf[0] not in ("cgroup", "cgroup2"):
            continue
        root, point = _unescape(lf[3]), _unescape(lf[4])
        if point != base and os.path.dirname(point) != base:
            continue
        if rf[0] == "cgroup2":
            path = next((p for i, c, p in memberships if i == "0" and c == ""), None)
        else:
            options = set(rf[2].split(","))
            path = next((p for i, c, p in memberships if c and set(c.split(",")) <= options), None)
        if path is None:
            continue
        rel = os.path.relpath(path, root) if (path + "/").startswith(root.rstrip("/") + "/") else "."
        source = os.path.normpath(os.path.join(point, rel))
        if not os.path.isdir(source):
            source = point
        found.append(CgroupMount("" if point == base else os.path.basename(point), source))
    links = []
    if not any(c.name == "" for c in found):
        try:
            for entry in os.scandir(base):
                if entry.is_symlink():
                    links.append((entry.name, os.readlink(entry.path)))
        except OSError:
            pass
    return tuple(found), tuple(sorted(links))


def _mkdir(path: str) -> None:
    os.makedirs(path, mode=0o755, exist_ok=True)


def _touch(path: str) -> None:
    if not os.path.lexists(path):
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o644))


def _bind_readonly(sys, source: str, target: str, extra: int = 0) -> None:
    """runc's two-step read-only bind: bind, then remount the bind read-only keeping its flags."""
    sys.mount(source, target, None, MS_BIND | MS_REC)
    sys.mount(None, target, None, MS_BIND | MS_REMOUNT | MS_RDONLY | extra | sys.mount_flags(target))


def mount_dev(sys, dev: str, host: HostView, shm_size: int = 64 << 20, insecure: bool = False) -> None:
    sys.mount("tmpfs", dev, "tmpfs", MS_NOSUID | MS_STRICTATIME, "mode=755,size=65536k")
    devices = host.devices + (tuple(d for d in host.insecure_devices if d not in host.devices) if insecure else ())
    for name in devices:
        node = os.path.join(dev, name)
        os.makedirs(os.path.dirname(node), mode=0o755, exist_ok=True)
        _touch(node)
        sys.mount(f"/dev/{name}", node, None, MS_BIND)
    _mkdir(os.path.join(dev, "pts"))
    sys.mount("devpts", os.path.join(dev, "pts"), "devpts", MS_NOSUID | MS_NOEXEC,
              "newinstance,ptmxmode=0666,mode=0620,gid=5")
    _mkdir(os.path.join(dev, "shm"))
    sys.mount("shm", os.path.join(dev, "shm"), "tmpfs", _SAFE, f"mode=1777,size={_size_option(shm_size)}")
    _mkdir(os.path.join(dev, "mqueue"))
    sys.mount("mqueue", os.path.join(dev, "mqueue"), "mqueue", _SAFE)
    for name, target in DEV_LINKS:
        link = os.path.join(dev, name)
        if not os.path.lexists(link):
            os.symlink(target, link)


def _size_option(size: int) -> str:
    return f"{size // 1024}k" if size % 1024 == 0 else str(size)


def mount_sys(sys, sysdir: str, host: HostView, writable: bool = False) -> None:
    """A read-only /sys with read-only cgroups (``writable``: both writable, BuildKit's insecure mode)."""
    sys.mount("sysfs", sysdir, "sysfs", _SAFE | (0 if writable else MS_RDONLY))
    if not host.cgroups:
        return
    cgroot = os.path.join(sysdir, "fs", "cgroup")
    single = next((c for c in host.cgroups if c.name == ""), None)
    if single is not None:
        if writable:
            sys.mount(single.source, cgroot, None, MS_BIND | MS_REC)
        else:
            _bind_readonly(sys, single.source, cgroot, _SAFE)
        return
    sys.mount("tmpfs", cgroot, "tmpfs", _SAFE, "mode=755")
    for cg in host.cgroups:
        target = os.path.join(cgroot, cg.name)
        _mkdir(target)
        _bind_readonly(sys, cg.source, target, _SAFE)
    for name, target in host.cgroup_links:
        link = os.path.join(cgroot, name)
        if not os.path.lexists(link):
            os.symlink(target, link)
    sys.mount(None, cgroot, None, MS_REMOUNT | MS_RDONLY | _SAFE, "mode=755")


def mount_proc_protections(sys, root: str) -> None:
    """Docker's read-only and masked paths (after /proc and /sys are mounted)."""
    for path in READONLY_PATHS:
        target = root + path
        if sys.path_kind(target) is not None:
            sys.mount(target, target, None, MS_BIND | MS_REC)
            sys.mount(None, target, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_REC | sys.mount_flags(target))
    for path in MASKED_PATHS:
        target = root + path
        kind = sys.path_kind(target)
        if kind == "dir":
            sys.mount("tmpfs", target, "tmpfs", MS_RDONLY, None)
        elif kind == "file":
            sys.mount("/dev/null", target, None, MS_BIND)


def prepare_rootfs(sys, spec: RunSpec, layout: RunLayout, plan: "_overlay.OverlayPlan",
                   host: HostView, secret_values: dict[str, bytes] | None = None) -> list[str]:
    """Mount everything a RUN sees under ``layout.rootfs``; returns the mount stubs it had to create."""
    root = layout.rootfs
    insecure = spec.security == "insecure"
    sys.mount(None, "/", None, MS_REC | MS_PRIVATE)
    _overlay.mount_overlay(sys, plan, root)
    stubs = StubRecorder(root, layout.stub_record)

    sys.mount("proc", stubs.ensure("/proc", True), "proc", _SAFE)
    mount_dev(sys, stubs.ensure("/dev", True), host, spec.shm_size, insecure)
    mount_sys(sys, stubs.ensure("/sys", True), host, writable=insecure)
    for device in spec.devices:
        sys.mount(device.host, stubs.ensure(device.target, False), None, MS_BIND)
    for given, generated, target in ((spec.hosts_file, layout.hosts, "/etc/hosts"),
                                     (spec.resolv_file, layout.resolv, "/etc/resolv.conf"),
                                     (spec.hostname_file, "", "/etc/hostname")):
        if given:       # a container's own file (docker binds these read-write)
            sys.mount(given, stubs.ensure(target, False), None, MS_BIND)
        elif generated:
            _bind_readonly(sys, generated, stubs.ensure(target, False), _SAFE)
    mount_all(sys, spec, layout, stubs, secret_values or {})
    if not insecure:                # BuildKit's insecure mode drops the masked and read-only paths
        mount_proc_protections(sys, root)
    return stubs.created


def make_root_readonly(sys) -> None:
    """``--read-only``: after pivot_root, the root mount itself (mounts on top keep their own flags)."""
    sys.mount(None, "/", None, MS_BIND | MS_REMOUNT | MS_RDONLY | sys.mount_flags("/"))


def pivot_root(sys, root: str) -> None:
    """Make ``root`` the root and drop the old one (``pivot_root(".", ".")``, no put_old directory)."""
    sys.chdir(root)
    sys.pivot_root(".", ".")
    sys.mount(None, ".", None, MS_SLAVE | MS_REC)
    sys.umount2(".", MNT_DETACH)
    sys.chdir("/")


__all__ = ["prepare_rootfs", "pivot_root", "make_root_readonly", "make_stub_layer", "read_host_view", "HostView", "CgroupMount",
           "MASKED_PATHS", "READONLY_PATHS", "DEVICES", "DEV_LINKS"]
