"""Container resource limits (``--memory``, ``--memory-swap``, ``--cpus``, ``--cpu-shares``, ``--pids-limit``)
as cgroups, the way docker (cgroupfs driver) and runc set them.

A container's cgroup is ``pybuild/<name>`` under the cgroup *this process* is in, in every hierarchy that
holds a controller we use: on cgroup v1 the ``memory``, ``cpu``, ``cpuacct`` and ``pids`` hierarchies, and
the cgroup v2 (unified) hierarchy whatever it holds (on this hybrid host it holds only hugetlb: the
directory is still made, so ``cgroup.kill`` and membership work there; on v2 ours nest under the nearest
ancestor without processes of its own, as the no-internal-process rule wants).  Limits go to the files the
hierarchy offers: v1 ``memory.limit_in_bytes`` / ``cpu.cfs_quota_us`` / ``pids.max``..., v2 ``memory.max`` /
``cpu.max`` / ``pids.max``...  The sandbox's pid 1 joins by writing "0" into each ``procs_files`` entry.

Everything that touches the host goes through a small filesystem object (``HostFS``), so the v2 writer
can be tested against a recording fake.  Releasing (``remove``, ``sweep``) works from the name alone and
is idempotent: a monitor that was SIGKILLed leaves nothing the next command cannot clean up.
"""

from __future__ import annotations

import errno
import os
import re
import signal
import time
from dataclasses import dataclass, replace

from ..errors import UsageError
from .errors import SandboxError

PARENT = "pybuild"                      # our cgroups live in <own cgroup>/pybuild/<name>
CPU_PERIOD = 100_000                    # docker's cfs period for --cpus (100 ms in µs)
MIN_MEMORY = 6 * 1024 * 1024            # docker's linuxMinMemory
MAX_CPU_SHARES = 262_144
V1_CONTROLLERS = ("memory", "cpu", "cpuacct", "pids", "freezer")
V2_CONTROLLERS = ("memory", "cpu", "pids")
UNLIMITED_V1_MEMORY = "-1"
REMOVE_PATIENCE = 30.0                  # seconds to wait for killed processes to leave before giving up
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_SIZE = re.compile(r"^(\d+(\.\d+)*) ?([kKmMgGtTpP])?[iI]?[bB]?$")     # go-units' sizeRegex (docker 20.10)
_BINARY = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


class LimitError(UsageError):
    """A resource flag docker would reject; the message is docker's."""


class CgroupError(SandboxError):
    """A cgroup could not be made, limited or removed."""


# --- limits and docker's parsing of them ---------------------------------------------------------------------


@dataclass(frozen=True)
class Limits:
    """What ``docker run`` resource flags ask for.  0 = no limit; ``memory_swap`` is docker's memory+swap
    total (-1 = unlimited swap, 0 = docker's default, which ``resolve_limits`` turns into twice ``memory``)."""

    memory: int = 0
    memory_swap: int = 0
    cpus: float = 0.0
    cpu_shares: int = 0
    pids: int = 0

    @property
    def nano_cpus(self) -> int:
        return round(self.cpus * 1_000_000_000)

    @property
    def cpu_quota(self) -> int:
        """cfs quota (µs per ``CPU_PERIOD``) for ``cpus``, as docker computes it; 0 = none."""
        return self.nano_cpus * CPU_PERIOD // 1_000_000_000 if self.nano_cpus > 0 else 0

    @property
    def limited(self) -> bool:
        """Whether any limit is asked for."""
        return any((self.memory, self.memory_swap, self.cpus, self.cpu_shares, self.pids))


def _flag_error(flag: str, value: str, message: str) -> LimitError:
    """The docker CLI's wording for a flag value its parser rejects."""
    if flag:
        return LimitError(f'invalid argument "{value}" for "{flag}" flag: {message}')
    return LimitError(message)


def parse_memory(value: str, *, flag: str = "") -> int:
    """``--memory`` / ``--memory-swap`` sizes as docker reads them (go-units RAMInBytes: binary units, an
    optional ``b``/``ib``, fractions allowed, ``64m`` = 64 MiB)."""
    match = _SIZE.match(value)
    if match is None:
        raise _flag_error(flag, value, f"invalid size: '{value}'")
    try:
        size = float(match.group(1))
    except ValueError:
        raise _flag_error(flag, value, f'strconv.ParseFloat: parsing "{match.group(1)}": invalid syntax') from None
    return int(size * _BINARY.get((match.group(3) or "").lower(), 1))


def parse_memory_swap(value: str, *, flag: str = "") -> int:
    """``--memory-swap``: a size, or ``-1`` for unlimited swap."""
    return -1 if value == "-1" else parse_memory(value, flag=flag)


def parse_cpus(value: str, *, flag: str = "") -> float:
    """``--cpus``: a rational number with at most nine decimals (docker's NanoCPUs)."""
    from fractions import Fraction

    try:
        if value != value.strip() or "_" in value:     # Python's Fraction allows these, Go's big.Rat does not
            raise ValueError(value)
        number = Fraction(value)
    except (ValueError, ZeroDivisionError):
        raise _flag_error(flag, value, f"failed to parse {value} as a rational number") from None
    nano = number * 1_000_000_000
    if nano.denominator != 1:
        raise _flag_error(flag, value, "value is too precise")
    return int(nano) / 1_000_000_000


def resolve_limits(limits: Limits, *, ncpu: int | None = None, swap_limit: bool = True) -> Limits:
    """Docker's daemon-side checks (its error texts) and defaults: ``memory_swap`` twice ``memory`` when not
    given (unlimited when the kernel cannot limit swap), negative ``pids`` = no limit."""
    memory, swap = limits.memory, limits.memory_swap
    if memory < 0:
        raise LimitError(f"invalid memory limit: {memory}")
    if memory and memory < MIN_MEMORY:
        raise LimitError("Minimum memory limit allowed is 6MB")
    if memory > 0 and swap == 0:
        swap = memory * 2
    if memory > 0 and swap != -1 and not swap_limit:
        swap = -1
    if memory > 0 and 0 < swap < memory:
        raise LimitError("Minimum memoryswap limit should be larger than memory limit, see usage")
    if memory == 0 and swap > 0:
        raise LimitError("You should always set the Memory limit when using Memoryswap limit, see usage")
    if swap < -1:
        raise LimitError(f"invalid memory swap limit: {swap}")
    if limits.nano_cpus != 0:
        count = ncpu if ncpu is not None else len(os.sched_getaffinity(0))
        if limits.nano_cpus < 0 or limits.nano_cpus > count * 1_000_000_000:
            raise LimitError(f"Range of CPUs is from 0.01 to {count}.00, as there are only {count} CPUs available")
    if limits.cpu_shares < 0:
        raise LimitError("shares: invalid argument")
    return replace(limits, memory_swap=swap, pids=max(limits.pids, 0))


def limits_from_flags(*, memory: str = "", memory_swap: str = "", cpus: str = "", cpu_shares: int = 0,
                      pids_limit: int = 0, ncpu: int | None = None, fs: HostFS | None = None) -> Limits:
    """``docker run``'s resource flags (as typed) to checked ``Limits`` with docker's defaults applied."""
    limits = Limits(
        memory=parse_memory(memory, flag="-m, --memory") if memory else 0,
        memory_swap=parse_memory_swap(memory_swap, flag="--memory-swap") if memory_swap else 0,
        cpus=parse_cpus(cpus, flag="--cpus") if cpus else 0.0,
        cpu_shares=cpu_shares, pids=pids_limit)
    swap_limit = limits.memory <= 0 or limits.memory_swap == -1 or swap_accounting(fs)
    return resolve_limits(limits, ncpu=ncpu, swap_limit=swap_limit)


def swap_accounting(fs: HostFS | None = None) -> bool:
    """Whether the memory controller here can limit memory+swap (v1 ``memsw`` files; v2 ``memory.swap.max``)."""
    fs = fs or HostFS()
    for h in hierarchies(fs):
        if "memory" in h.controllers:
            base = h.own_dir
            return h.version == 2 or fs.exists(f"{base}/memory.memsw.limit_in_bytes")
    return False


# --- the host, through an object that tests can replace ----------------------------------------------------


class HostFS:
    """The few file operations the cgroup code needs, on the real host (``root`` prefixes every path)."""

    def __init__(self, root: str = "/"):
        self.root = root

    def _p(self, path: str) -> str:
        return path if self.root == "/" else os.path.join(self.root, path.lstrip("/"))

    def read(self, path: str) -> str:
        with open(self._p(path)) as fh:
            return fh.read()

    def write(self, path: str, text: str) -> None:
        """One write(2) of the whole value, as cgroupfs wants; no create, no truncate."""
        fd = os.open(self._p(path), os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, text.encode())
        finally:
            os.close(fd)

    def exists(self, path: str) -> bool:
        return os.path.exists(self._p(path))

    def mkdir(self, path: str) -> None:
        try:
            os.mkdir(self._p(path), 0o755)
        except FileExistsError:
            pass

    def rmdir(self, path: str) -> None:
        os.rmdir(self._p(path))

    def subdirs(self, path: str) -> list[str]:
        try:
            return sorted(e.name for e in os.scandir(self._p(path)) if e.is_dir(follow_symlinks=False))
        except (FileNotFoundError, NotADirectoryError):
            return []

    def kill(self, pid: int, sig: int) -> None:
        os.kill(pid, sig)

    def pause(self) -> None:
        time.sleep(0.005)


@dataclass(frozen=True)
class Hierarchy:
    """One mounted cgroup hierarchy and where this process sits in it."""

    version: int                        # 1 or 2
    controllers: frozenset[str]         # v1: its mount options' controllers; v2: cgroup.controllers of our cgroup
    mountpoint: str
    own_path: str                       # where ours nest, relative to the mount's root ("" = the root): our own
                                        # cgroup; on v2 the nearest ancestor-or-self that may have children

    @property
    def own_dir(self) -> str:
        return os.path.join(self.mountpoint, self.own_path) if self.own_path else self.mountpoint


def _unescape(field: str) -> str:
    return field.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")


def hierarchies(fs: HostFS) -> tuple[Hierarchy, ...]:
    """The cgroup hierarchies we put containers in: v1 ones holding a controller we use, and the v2 one."""
    try:
        mountinfo = fs.read("/proc/self/mountinfo").splitlines()
        memberships = [line.split(":", 2) for line in fs.read("/proc/self/cgroup").splitlines() if line.count(":") >= 2]
    except OSError as err:
        raise CgroupError(f"cannot read this process's cgroups: {err.strerror or err}") from None
    mounts = []
    for line in mountinfo:
        left, _, right = line.partition(" - ")
        lf, rf = left.split(), right.split()
        if len(lf) >= 5 and len(rf) >= 3 and rf[0] in ("cgroup", "cgroup2"):
            mounts.append((_unescape(lf[3]), _unescape(lf[4]), rf))
    # a hierarchy mounted twice: prefer the whole hierarchy, mounted where the host keeps cgroups
    mounts.sort(key=lambda m: (m[0] != "/", not (m[1] + "/").startswith("/sys/fs/cgroup/")))
    found: list[Hierarchy] = []
    seen: set[str] = set()
    for root, point, rf in mounts:
        if rf[0] == "cgroup2":
            path = next((p for i, c, p in memberships if i == "0" and c == ""), None)
            controllers: frozenset[str] = frozenset()
            version = 2
        else:
            options = set(rf[2].split(","))
            controllers = frozenset(o for o in options if o in V1_CONTROLLERS)
            if not controllers:
                continue
            path = next((p for i, c, p in memberships if c and set(c.split(",")) <= options
                         and set(c.split(",")) & controllers), None)
            version = 1
        key = f"{version}:{','.join(sorted(controllers))}"
        if path is None or key in seen:
            continue
        seen.add(key)
        rel = os.path.relpath(path, root) if (path.rstrip("/") + "/").startswith(root.rstrip("/") + "/") else "."
        own = "" if rel == "." else rel
        if version == 2:
            own = _v2_nest(fs, point, own)
            try:        # what the root has can be handed down to us (ancestors get it enabled on the way)
                controllers = frozenset(fs.read(f"{point}/cgroup.controllers").split())
            except OSError:
                controllers = frozenset()
        found.append(Hierarchy(version, controllers, point, own))
    return tuple(found)


def _path_down(mountpoint: str, rel: str) -> list[str]:
    """The directories from the hierarchy's root down to ``rel`` (both included)."""
    out, current = [mountpoint], mountpoint
    for part in [p for p in rel.split("/") if p]:
        current = f"{current}/{part}"
        out.append(current)
    return out


def _v2_nest(fs: HostFS, mountpoint: str, own: str) -> str:
    """cgroup v2's no-internal-process rule: a cgroup holding processes (ours, when it is a leaf such as a
    systemd service) cannot hand controllers to children; the root can.  So nest under the nearest
    ancestor-or-self without processes of its own (``/system.slice`` for a service), the root at worst."""
    while own:
        try:
            if not fs.read(f"{mountpoint}/{own}/cgroup.procs").strip():
                return own
        except OSError:
            pass
        own = os.path.dirname(own)
    return own


# --- one container's cgroup ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CgroupStats:
    """What ``stats`` / ``inspect`` show; -1 where the host has no such counter."""

    memory_usage: int = -1
    memory_limit: int = -1
    memory_max_usage: int = -1
    pids: int = -1
    cpu_usage_ns: int = -1


class Cgroup:
    """``pybuild/<name>`` in every hierarchy we use; ``procs_files`` go into ``RunSpec.cgroup_procs``."""

    def __init__(self, name: str, dirs: tuple[tuple[Hierarchy, str], ...], fs: HostFS):
        self.name = name
        self.dirs = dirs                # (hierarchy, absolute directory) pairs
        self.fs = fs
        self.warnings: tuple[str, ...] = ()     # docker's "limitation discarded" texts for limits the host lacks

    def __repr__(self) -> str:
        return f"Cgroup({self.name!r}, {[d for _, d in self.dirs]})"

    # -- finding and making --

    @classmethod
    def open(cls, name: str, *, fs: HostFS | None = None, search: bool = True) -> Cgroup:
        """The cgroup ``name`` as ``create`` placed it (it need not exist: removing it is then a no-op).
        A process elsewhere in a hierarchy (another login session on a v1 host, where each session has its
        own memory cgroup) finds it by ``search``: ``pybuild/<name>`` anywhere in that hierarchy."""
        _check_name(name)
        fs = fs or HostFS()
        dirs = []
        for h in hierarchies(fs):
            path = f"{h.own_dir}/{PARENT}/{name}"
            if search and not fs.exists(path):
                path = _find(fs, h.mountpoint, name) or path
            dirs.append((h, path))
        return cls(name, tuple(dirs), fs)

    @classmethod
    def create(cls, name: str, limits: Limits = Limits(), *, fs: HostFS | None = None) -> Cgroup:
        """Make the cgroup and write ``limits`` (already resolved: see ``resolve_limits``).  A leftover empty
        cgroup of that name is replaced (its limits may differ); one with processes is in use: an error."""
        group = cls.open(name, fs=fs, search=False)
        if group.exists:
            if group.pids():
                raise CgroupError(f"cgroup {name} is in use")
            group.remove()
        applied: set[str] = set()
        try:
            for h, path in group.dirs:
                parent = os.path.dirname(path)
                try:
                    if h.version == 2:
                        for directory in _path_down(h.mountpoint, h.own_path):
                            group._enable_v2_controllers(h, directory)
                    group.fs.mkdir(parent)
                    if h.version == 2:
                        group._enable_v2_controllers(h, parent)
                    group.fs.mkdir(path)
                except OSError as err:
                    raise CgroupError(f"cannot create cgroup {path}: {err.strerror or err}") from None
                if h.version == 1:
                    applied |= group._limit_v1(h, path, limits)
                else:
                    applied |= group._limit_v2(path, limits)
        except BaseException:
            group.remove()
            raise
        group.warnings = tuple(_DISCARDED[key] for key in _wanted(limits) if key not in applied)
        return group

    def _enable_v2_controllers(self, h: Hierarchy, directory: str) -> None:
        """Let ``directory``'s children use memory, cpu and pids where it has them (a systemd slice may not
        hand all of them down yet).  A cgroup with processes of its own cannot hand controllers down (EBUSY):
        those limits are then not applied (see warnings)."""
        try:
            enabled = set(self.fs.read(f"{directory}/cgroup.subtree_control").split())
            available = set(self.fs.read(f"{directory}/cgroup.controllers").split())
        except OSError:
            return
        for controller in V2_CONTROLLERS:
            if controller in available and controller not in enabled:
                try:
                    self.fs.write(f"{directory}/cgroup.subtree_control", f"+{controller}")
                except OSError:
                    pass

    def _limit_v1(self, h: Hierarchy, path: str, limits: Limits) -> set[str]:
        """Write what this v1 hierarchy's controllers can limit; returns the limits applied."""
        done = set()
        for key, controller in _wanted(limits).items():
            if controller not in h.controllers:
                continue
            if key == "memory":
                self._set(path, "memory.limit_in_bytes", str(limits.memory))
                if limits.memory_swap and self.fs.exists(f"{path}/memory.memsw.limit_in_bytes"):
                    self._set(path, "memory.memsw.limit_in_bytes",
                              UNLIMITED_V1_MEMORY if limits.memory_swap < 0 else str(limits.memory_swap))
            elif key == "cpu.shares":
                self._set(path, "cpu.shares", str(limits.cpu_shares))
                self._check_shares(path, limits.cpu_shares)
            elif key == "cpu.quota":
                self._set(path, "cpu.cfs_period_us", str(CPU_PERIOD))
                self._set(path, "cpu.cfs_quota_us", str(limits.cpu_quota))
            elif key == "pids":
                self._set(path, "pids.max", str(limits.pids))
            done.add(key)
        return done

    def _check_shares(self, path: str, shares: int) -> None:
        """The kernel clamps cpu.shares to 2..262144 silently; runc reads it back and refuses, so do we."""
        got = _int_or(_read_or(self.fs, f"{path}/cpu.shares"))
        if 0 < got < shares:
            raise CgroupError(f"the maximum allowed cpu-shares is {got}")
        if got > shares:
            raise CgroupError(f"the minimum allowed cpu-shares is {got}")

    def _limit_v2(self, path: str, limits: Limits) -> set[str]:
        """runc's cgroup v2 conversions (swap is what comes on top of memory, shares map onto 1..10000), into
        the files the controllers handed down to us offer; returns the limits applied."""
        done = set()
        for key in _wanted(limits):
            file = {"memory": "memory.max", "cpu.shares": "cpu.weight", "cpu.quota": "cpu.max",
                    "pids": "pids.max"}[key]
            if not self.fs.exists(f"{path}/{file}"):
                continue
            if key == "memory":
                self._set(path, file, str(limits.memory))
                if limits.memory_swap and self.fs.exists(f"{path}/memory.swap.max"):
                    swap = "max" if limits.memory_swap < 0 else str(limits.memory_swap - limits.memory)
                    self._set(path, "memory.swap.max", swap)
            elif key == "cpu.shares":
                self._set(path, file, str(cpu_weight(limits.cpu_shares)))
            elif key == "cpu.quota":
                self._set(path, file, f"{limits.cpu_quota} {CPU_PERIOD}")
            else:
                self._set(path, file, str(limits.pids))
            done.add(key)
        return done

    def _set(self, path: str, file: str, value: str) -> None:
        try:
            self.fs.write(f"{path}/{file}", value)
        except OSError as err:
            raise CgroupError(f'failed to write "{value}" to "{path}/{file}": {err.strerror or err}') from None

    # -- using --

    @property
    def procs_files(self) -> tuple[str, ...]:
        return tuple(f"{path}/cgroup.procs" for _, path in self.dirs)

    @property
    def exists(self) -> bool:
        return any(self.fs.exists(path) for _, path in self.dirs)

    def pids(self) -> set[int]:
        """Every process in the cgroup (any hierarchy, nested cgroups included)."""
        found: set[int] = set()
        for _, path in self.dirs:
            for directory in _tree(self.fs, path):
                try:
                    found.update(int(p) for p in self.fs.read(f"{directory}/cgroup.procs").split())
                except OSError:
                    pass
        return found

    def _counter(self, file: str, key: str | None = None, *, controller: str = "", version: int = 0) -> int:
        """A number from ``file`` in the first of our directories that has it (-1: none has; "max" = -1),
        looking only in hierarchies holding ``controller`` / of ``version`` when given."""
        for h, path in self.dirs:
            if (controller and controller not in h.controllers) or (version and h.version != version):
                continue
            try:
                text = self.fs.read(f"{path}/{file}")
            except OSError:
                continue
            if key is not None:
                return _keyed(text).get(key, -1)
            word = text.strip()
            return -1 if word == "max" else _int_or(word)
        return -1

    def oom_killed(self) -> bool:
        """Whether the kernel OOM-killed a process in this cgroup: v2 ``memory.events`` / v1 ``oom_control``
        ``oom_kill`` counts; on old v1 kernels without that count, the limit was hit and reached."""
        for h, path in self.dirs:
            if "memory" not in h.controllers:
                continue
            if h.version == 2:
                events = _keyed(_read_or(self.fs, f"{path}/memory.events"))
                if "oom_kill" in events:
                    return events["oom_kill"] > 0
                continue
            control = _keyed(_read_or(self.fs, f"{path}/memory.oom_control"))
            if "oom_kill" in control:
                return control["oom_kill"] > 0
            failcnt = _int_or(_read_or(self.fs, f"{path}/memory.failcnt"))
            limit = _int_or(_read_or(self.fs, f"{path}/memory.limit_in_bytes"))
            peak = _int_or(_read_or(self.fs, f"{path}/memory.max_usage_in_bytes"))
            return failcnt > 0 and 0 < limit <= peak + 4096
        return False

    def stats(self) -> CgroupStats:
        """Memory (usage, limit, peak), process count and CPU time, from whichever hierarchy counts them."""
        if any(h.version == 2 and "memory" in h.controllers for h, _ in self.dirs):
            memory = [self._counter(f, controller="memory") for f in ("memory.current", "memory.max", "memory.peak")]
        else:
            memory = [self._counter(f, controller="memory")
                      for f in ("memory.usage_in_bytes", "memory.limit_in_bytes", "memory.max_usage_in_bytes")]
        cpu = self._counter("cpuacct.usage", controller="cpuacct", version=1)
        if cpu < 0:
            usec = self._counter("cpu.stat", "usage_usec", version=2)
            cpu = usec * 1000 if usec >= 0 else -1
        return CgroupStats(*memory, self._counter("pids.current", controller="pids"), cpu)

    # -- releasing --

    def remove(self, *, patience: float = REMOVE_PATIENCE) -> None:
        """Kill whatever still runs inside, then delete the directories.  Idempotent."""
        for h, path in self.dirs:
            if h.version == 2 and self.fs.exists(f"{path}/cgroup.kill"):
                try:
                    self.fs.write(f"{path}/cgroup.kill", "1")
                except OSError:
                    pass
        deadline = time.monotonic() + patience
        me = os.getpid()
        while True:
            pids = self.pids() - {me}
            if not pids:
                break
            for pid in pids:
                try:
                    self.fs.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            if time.monotonic() > deadline:
                raise CgroupError(f"cannot remove cgroup {self.name}: processes {sorted(pids)} do not exit")
            self.fs.pause()
        for _, path in self.dirs:
            for directory in reversed(_tree(self.fs, path)):
                self._rmdir(directory, deadline)

    def _rmdir(self, directory: str, deadline: float) -> None:
        """rmdir, waiting out EBUSY while the last killed tasks are still being torn down."""
        while True:
            try:
                self.fs.rmdir(directory)
                return
            except FileNotFoundError:
                return
            except OSError as err:
                if err.errno != errno.EBUSY or time.monotonic() > deadline:
                    raise CgroupError(f"cannot remove cgroup {directory}: {err.strerror or err}") from None
                self.fs.pause()


_DISCARDED = {   # docker's warnings when the host cannot apply a limit (docker then runs without it, so do we)
    "memory": "Your kernel does not support memory limit capabilities or the cgroup is not mounted. "
              "Limitation discarded.",
    "cpu.shares": "Your kernel does not support CPU shares or the cgroup is not mounted. Shares discarded.",
    "cpu.quota": "Your kernel does not support CPU CFS scheduler. CPU period/quota discarded.",
    "pids": "Your kernel does not support PIDs limit capabilities or the cgroup is not mounted. PIDs limit discarded.",
}


def _wanted(limits: Limits) -> dict[str, str]:
    """The limits asked for, each with the controller that applies it."""
    asked = {"memory": limits.memory > 0, "cpu.shares": limits.cpu_shares > 0, "cpu.quota": limits.cpu_quota > 0,
             "pids": limits.pids > 0}
    return {key: key.split(".")[0] for key, on in asked.items() if on}


def cpu_weight(shares: int) -> int:
    """runc's map of cgroup v1 cpu.shares (2..262144) onto cgroup v2 cpu.weight (1..10000)."""
    shares = min(max(shares, 2), MAX_CPU_SHARES)
    return 1 + ((shares - 2) * 9999) // 262142


def store_prefix(store_root) -> str:
    """A name prefix of one store's cgroups (``<prefix><container id>``), so that ``sweep`` run for one store
    leaves the cgroups of another store on the same host alone."""
    import hashlib

    return hashlib.sha256(os.path.realpath(os.fspath(store_root)).encode()).hexdigest()[:12] + "-"


def names(*, fs: HostFS | None = None) -> set[str]:
    """Names of the ``pybuild/*`` cgroups under our own cgroups, in any hierarchy."""
    fs = fs or HostFS()
    found: set[str] = set()
    for h in hierarchies(fs):
        found.update(n for n in fs.subdirs(f"{h.own_dir}/{PARENT}") if _NAME.match(n))
    return found


def sweep(live_names, *, prefix: str, fs: HostFS | None = None) -> list[str]:
    """Remove the ``pybuild/*`` cgroups whose name starts with ``prefix`` and that are not in ``live_names``;
    returns the names removed.  The prefix is required and must not be empty: the cgroups of every store
    (and every test) on the host share the parent directories, and a sweep must only touch its own
    (``store_prefix(root)``)."""
    if not prefix:
        raise CgroupError("a cgroup sweep needs the name prefix of the cgroups it owns")
    fs = fs or HostFS()
    live = set(live_names)
    removed = []
    for name in sorted(names(fs=fs)):
        if name.startswith(prefix) and name not in live:
            Cgroup.open(name, fs=fs).remove()
            removed.append(name)
    return removed


def _find(fs: HostFS, mountpoint: str, name: str, depth: int = 8) -> str | None:
    """``.../pybuild/<name>`` anywhere in a hierarchy (breadth first, not below containers' cgroups)."""
    level = [mountpoint]
    for _ in range(depth):
        below = []
        for directory in level:
            for child in fs.subdirs(directory):
                if child == PARENT:
                    if fs.exists(f"{directory}/{PARENT}/{name}"):
                        return f"{directory}/{PARENT}/{name}"
                    continue
                below.append(f"{directory}/{child}")
        level = below
        if not level:
            break
    return None


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not _NAME.match(name):
        raise CgroupError(f"invalid cgroup name {name!r}")


def _tree(fs: HostFS, path: str) -> list[str]:
    """``path`` and the cgroups below it, parents first ([] when it does not exist)."""
    if not fs.exists(path):
        return []
    out = [path]
    for child in fs.subdirs(path):
        out.extend(_tree(fs, f"{path}/{child}"))
    return out


def _read_or(fs: HostFS, path: str) -> str:
    try:
        return fs.read(path)
    except OSError:
        return ""


def _int_or(text: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        return -1


def _keyed(text: str) -> dict[str, int]:
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("-").isdigit():
            out[parts[0]] = int(parts[1])
    return out


__all__ = [
    "Cgroup",
    "CgroupError",
    "CgroupStats",
    "Hierarchy",
    "HostFS",
    "LimitError",
    "Limits",
    "cpu_weight",
    "hierarchies",
    "limits_from_flags",
    "names",
    "parse_cpus",
    "parse_memory",
    "parse_memory_swap",
    "resolve_limits",
    "store_prefix",
    "swap_accounting",
    "sweep",
]
