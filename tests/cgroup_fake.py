"""A recording, in-memory stand-in for the cgroup filesystems (``builder.sandbox.cgroups.HostFS``).

It behaves like cgroupfs where the code under test depends on it: ``mkdir`` of a cgroup makes the
interface files of the controllers its parent hands down (v2: ``cgroup.subtree_control``; v1: the
hierarchy's controllers), writing a file that does not exist fails with ENOENT (cgroupfs cannot create
files), enabling a controller the cgroup does not have fails, v2's no-internal-process rule gives EBUSY,
``rmdir`` of a cgroup with processes or children gives EBUSY, ``cgroup.kill`` and ``kill`` end processes.
Every write is recorded in ``writes`` as (path, value), so tests see what was written, in order.
"""

from __future__ import annotations

import errno
import os

V2_FILES = {
    "memory": {"memory.max": "max\n", "memory.swap.max": "max\n", "memory.current": "0\n", "memory.peak": "0\n",
               "memory.events": "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n"},
    "cpu": {"cpu.max": "max 100000\n", "cpu.weight": "100\n"},
    "pids": {"pids.max": "max\n", "pids.current": "0\n"},
}
V1_FILES = {
    "memory": {"memory.limit_in_bytes": "9223372036854771712\n", "memory.memsw.limit_in_bytes": "9223372036854771712\n",
               "memory.usage_in_bytes": "0\n", "memory.max_usage_in_bytes": "0\n", "memory.failcnt": "0\n",
               "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n"},
    "cpu": {"cpu.shares": "1024\n", "cpu.cfs_period_us": "100000\n", "cpu.cfs_quota_us": "-1\n"},
    "cpuacct": {"cpuacct.usage": "0\n"},
    "pids": {"pids.max": "max\n", "pids.current": "0\n"},
}


def _err(code: int, path: str) -> OSError:
    return OSError(code, os.strerror(code), path)


class FakeCgroupFS:
    """``mounts``: (mountpoint, version, controllers); ``own``: {mountpoint: our cgroup path in it}."""

    def __init__(self, mounts, own=None, *, v1_without=()):
        self.files: dict[str, str] = {}
        self.dirs: set[str] = {"/", "/proc", "/proc/self", "/sys", "/sys/fs"}
        self.mounts = {point: (version, tuple(ctrls)) for point, version, ctrls in mounts}
        self.v1_without = set(v1_without)          # v1 interface files this kernel lacks (e.g. memsw)
        self.writes: list[tuple[str, str]] = []
        self.killed: list[int] = []
        self.where: dict[int, set[str]] = {}       # pid -> the cgroup dirs it is in
        own = own or {}
        mountinfo, memberships = [], []
        for n, (point, (version, ctrls)) in enumerate(self.mounts.items()):
            fstype = "cgroup2" if version == 2 else "cgroup"
            opts = "rw" if version == 2 else "rw," + ",".join(ctrls)
            mountinfo.append(f"{30 + n} 20 0:{40 + n} / {point} rw,relatime - {fstype} {fstype} {opts}")
            path = own.get(point, "/")
            memberships.append(f"0::{path}" if version == 2 else f"{n + 1}:{','.join(ctrls)}:{path}")
            self._mkdirs(point)
            self._populate(point, None)
            if version == 2:
                self.files[f"{point}/cgroup.controllers"] = " ".join(ctrls) + "\n"
            if path != "/":     # our own cgroup, below ancestors that hand every controller down (as systemd)
                current = point
                for part in [p for p in path.split("/") if p]:
                    if version == 2:
                        self.files[f"{current}/cgroup.subtree_control"] = " ".join(ctrls) + "\n"
                    current = f"{current}/{part}"
                    self.mkdir(current)
        self.files["/proc/self/mountinfo"] = "\n".join(mountinfo) + "\n"
        self.files["/proc/self/cgroup"] = "\n".join(reversed(memberships)) + "\n"

    # -- building --

    def _mkdirs(self, path: str) -> None:
        parts = [p for p in path.split("/") if p]
        for i in range(1, len(parts) + 1):
            self.dirs.add("/" + "/".join(parts[:i]))

    def _mount_of(self, path: str) -> str | None:
        return next((m for m in self.mounts if path == m or path.startswith(m + "/")), None)

    def _populate(self, path: str, parent: str | None) -> None:
        point = self._mount_of(path)
        version, ctrls = self.mounts[point]
        self.files[f"{path}/cgroup.procs"] = ""
        if version == 2:
            handed = self.files.get(f"{parent}/cgroup.subtree_control", "").split() if parent else list(ctrls)
            self.files[f"{path}/cgroup.subtree_control"] = ""
            self.files[f"{path}/cgroup.events"] = "populated 0\nfrozen 0\n"
            self.files[f"{path}/cpu.stat"] = "usage_usec 0\nuser_usec 0\nsystem_usec 0\n"
            if parent:
                self.files[f"{path}/cgroup.controllers"] = " ".join(handed) + "\n"
                self.files[f"{path}/cgroup.kill"] = ""
                for c in handed:
                    self.files.update({f"{path}/{k}": v for k, v in V2_FILES.get(c, {}).items()})
        elif parent:
            for c in ctrls:
                self.files.update({f"{path}/{k}": v for k, v in V1_FILES.get(c, {}).items()
                                   if k not in self.v1_without})

    # -- helpers for tests --

    def add_process(self, pid: int, cgroup_dir: str) -> None:
        self.where.setdefault(pid, set()).add(cgroup_dir)
        self._sync()

    def written(self, name: str) -> list[tuple[str, str]]:
        """The writes to files called ``name``."""
        return [(p, v) for p, v in self.writes if p.endswith("/" + name)]

    def set(self, path: str, text: str) -> None:
        """Change a file as the kernel would (a counter), without recording it as our write."""
        self.files[path] = text

    def _sync(self) -> None:
        for key in [k for k in self.files if k.endswith("/cgroup.procs")]:
            d = key.rsplit("/", 1)[0]
            self.files[key] = "".join(f"{pid}\n" for pid, ds in sorted(self.where.items()) if d in ds)

    # -- HostFS --

    def read(self, path: str) -> str:
        if path not in self.files:
            raise _err(errno.ENOENT, path)
        return self.files[path]

    def exists(self, path: str) -> bool:
        return path in self.files or path in self.dirs

    def write(self, path: str, text: str) -> None:
        if path not in self.files:
            raise _err(errno.ENOENT, path)
        directory, name = path.rsplit("/", 1)
        if name == "cgroup.subtree_control":
            self._subtree(directory, path, text)
        elif name == "cgroup.kill":
            for pid in [p for p, ds in self.where.items() if any(d == directory or d.startswith(directory + "/")
                                                                 for d in ds)]:
                self._end(pid)
        elif name == "cgroup.procs":
            point = self._mount_of(directory)
            pid = int(text)
            self.where[pid] = {d for d in self.where.get(pid, set()) if self._mount_of(d) != point} | {directory}
            self._sync()
        elif name in ("memory.max", "memory.swap.max", "pids.max"):
            if text != "max" and not text.isdigit():
                raise _err(errno.EINVAL, path)
            self.files[path] = text + "\n"
        elif name == "cpu.max":
            quota, _, period = text.partition(" ")
            if not (quota == "max" or quota.isdigit()) or (period and not period.isdigit()):
                raise _err(errno.EINVAL, path)
            self.files[path] = text + "\n"
        elif name == "cpu.weight":
            if not text.isdigit() or not 1 <= int(text) <= 10000:
                raise _err(errno.ERANGE, path)
            self.files[path] = text + "\n"
        else:
            self.files[path] = text + "\n"
        self.writes.append((path, text))

    def _subtree(self, directory: str, path: str, text: str) -> None:
        enabled = self.files[path].split()
        available = self.files.get(f"{directory}/cgroup.controllers", "").split()
        is_root = directory in self.mounts
        for word in text.split():
            sign, ctrl = word[0], word[1:]
            if sign not in "+-" or ctrl not in available:
                raise _err(errno.ENOENT if sign == "+" else errno.EINVAL, path)
            if sign == "+" and not is_root and self.files.get(f"{directory}/cgroup.procs"):
                raise _err(errno.EBUSY, path)
            if sign == "+" and ctrl not in enabled:
                enabled.append(ctrl)
            elif sign == "-" and ctrl in enabled:
                enabled.remove(ctrl)
        self.files[path] = " ".join(enabled) + "\n"
        for child in self.subdirs(directory):       # children see what is handed down at once
            child = f"{directory}/{child}"
            self.files[f"{child}/cgroup.controllers"] = " ".join(enabled) + "\n"
            for c in enabled:
                for k, v in V2_FILES.get(c, {}).items():
                    self.files.setdefault(f"{child}/{k}", v)

    def _end(self, pid: int) -> None:
        self.where.pop(pid, None)
        self.killed.append(pid)
        self._sync()

    def mkdir(self, path: str) -> None:
        if path in self.dirs:
            return
        parent = path.rsplit("/", 1)[0]
        if parent not in self.dirs:
            raise _err(errno.ENOENT, path)
        self.dirs.add(path)
        self._populate(path, parent)

    def rmdir(self, path: str) -> None:
        if path not in self.dirs:
            raise _err(errno.ENOENT, path)
        if any(d.startswith(path + "/") for d in self.dirs) or self.files.get(f"{path}/cgroup.procs"):
            raise _err(errno.EBUSY, path)
        self.dirs.discard(path)
        for key in [k for k in self.files if k.startswith(path + "/")]:
            del self.files[key]

    def subdirs(self, path: str) -> list[str]:
        return sorted(d[len(path) + 1:] for d in self.dirs if d.startswith(path + "/") and "/" not in d[len(path) + 1:])

    def kill(self, pid: int, sig: int) -> None:
        if pid not in self.where:
            raise ProcessLookupError(pid)
        self._end(pid)

    def pause(self) -> None:
        pass
