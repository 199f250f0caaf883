"""What to run and how: the frozen description of one RUN step, the only input of the sandbox.

A ``RunSpec`` is plain data (paths, strings, tuples) so it can be checked once here, hashed, and sent to
the sandbox's init process as JSON.  The build engine fills it from the image config and the RUN
instruction; nothing in it refers to live objects.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, fields

from .errors import SandboxError

DEFAULT_HOSTNAME = "buildkitsandbox"
DEFAULT_SHELL = ("/bin/sh", "-c")
NETWORK_MODES = ("host", "none")
SECURITY_MODES = ("sandbox", "insecure")
DEFAULT_SHM_SIZE = 64 << 20
STDIN_MODES = ("null", "inherit", "pipe")
OUTPUT_MODES = ("inherit", "pipe")
STDERR_MODES = ("inherit", "pipe", "stdout")


def shell_argv(command: str, shell: tuple[str, ...] | list[str] = DEFAULT_SHELL) -> tuple[str, ...]:
    """The argv of a shell-form RUN: the stage's SHELL (``["/bin/sh", "-c"]`` by default) plus the text."""
    return (*shell, command)


@dataclass(frozen=True, slots=True)
class BindMount:
    """A host path made visible at ``target`` (RUN --mount=type=bind/cache/secret will use these)."""

    source: str
    target: str
    readonly: bool = True

    def __post_init__(self):
        _absolute("bind mount source", self.source)
        _absolute("bind mount target", self.target)


@dataclass(frozen=True, slots=True)
class TmpfsMount:
    """An empty tmpfs at ``target``; ``size`` in bytes (0: the kernel's default, half of RAM)."""

    target: str
    size: int = 0
    mode: int = 0o1777
    readonly: bool = False
    noexec: bool = False         # docker's --tmpfs defaults (BuildKit's RUN tmpfs has neither)
    nodev: bool = False

    def __post_init__(self):
        _absolute("tmpfs target", self.target)
        if self.size < 0:
            raise SandboxError(f"tmpfs size must not be negative: {self.size}")


@dataclass(frozen=True, slots=True)
class OverlayMount:
    """A merged view of host directories at ``target``: ``lower_dirs`` top first (a stage's or an
    image's layer snapshots, or a context directory), with ``hidden`` paths (relative, '/'-separated:
    what .dockerignore excludes) whited out.  ``subpath`` picks a directory or file inside the view,
    its symlinks resolved inside the view.  Read-only, or writable into a throwaway upper dir that
    goes with the sandbox's scratch directory (``RUN --mount=type=bind,rw``).  ``is_dir``: what
    ``subpath`` is, so the mount point can be made before the sandbox starts."""

    lower_dirs: tuple[str, ...]
    target: str
    subpath: str = ""
    readonly: bool = True
    hidden: tuple[str, ...] = ()
    is_dir: bool = True

    def __post_init__(self):
        for name in ("lower_dirs", "hidden"):
            if not isinstance(getattr(self, name), tuple):
                object.__setattr__(self, name, tuple(getattr(self, name)))
        if not self.lower_dirs:
            raise SandboxError("an overlay mount needs at least one lower directory")
        for path in self.lower_dirs:
            _absolute("overlay mount lower dir", path)
        _absolute("overlay mount target", self.target)
        for rel in self.hidden:
            if rel.startswith("/") or not rel or ".." in rel.split("/") or "\0" in rel:
                raise SandboxError(f"invalid hidden path {rel!r}")


@dataclass(frozen=True, slots=True)
class SecretMount:
    """A secret the command sees as a file at ``target`` (``""``: none) and/or in env var ``env``.

    The value is not part of the spec (specs are written to disk): ``run`` takes the values
    separately, by ``id``, and hands them to the sandbox through an anonymous memory file.  Inside,
    the file lives on a tmpfs of the sandbox's own mount namespace, bound read-only at ``target``."""

    id: str
    target: str = ""
    env: str = ""
    uid: int = 0
    gid: int = 0
    mode: int = 0o400

    def __post_init__(self):
        if not self.target and not self.env:
            raise SandboxError(f"secret {self.id!r} needs a target or an env name")
        if self.target:
            _absolute("secret target", self.target)
        if self.env and ("=" in self.env or "\0" in self.env):
            raise SandboxError(f"invalid secret env name {self.env!r}")


@dataclass(frozen=True, slots=True)
class Ulimit:
    """One resource limit (``--ulimit nofile=1024:2048``): the RLIMIT name without prefix, soft, hard
    (-1: unlimited)."""

    name: str
    soft: int
    hard: int

    def __post_init__(self):
        if self.name not in ULIMIT_NAMES:
            raise SandboxError(f"invalid ulimit type: {self.name}")
        if self.hard != -1 and (self.soft == -1 or self.soft > self.hard):
            raise SandboxError(f"ulimit soft limit must be less than or equal to hard limit: {self.soft} > {self.hard}")


ULIMIT_NAMES = ("as", "core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile", "nproc",
                "rss", "rtprio", "rttime", "sigpending", "stack")


@dataclass(frozen=True, slots=True)
class DeviceMapping:
    """A host device node shown in the container (``--device /dev/fuse[:/dev/fuse[:rwm]]``)."""

    host: str
    target: str
    permissions: str = "rwm"

    def __post_init__(self):
        _absolute("device path", self.host)
        _absolute("device target", self.target)
        if not self.permissions or set(self.permissions) - set("rwm"):
            raise SandboxError(f"invalid device permissions {self.permissions!r}: want a combination of r, w, m")


@dataclass(frozen=True, slots=True)
class HostEntry:
    """One extra /etc/hosts line (``--add-host name:ip``)."""

    name: str
    ip: str

    def __post_init__(self):
        import ipaddress

        try:
            ipaddress.ip_address(self.ip)
        except ValueError:
            raise SandboxError(f"invalid IP address in add-host: {self.ip!r}") from None
        if not self.name or any(c.isspace() for c in self.name):
            raise SandboxError(f"invalid host name in add-host: {self.name!r}")


@dataclass(frozen=True, slots=True)
class RunSpec:
    """One process to run in a fresh sandbox over an overlay of ``lower_dirs`` (top layer first).

    ``upper_dir``/``work_dir`` are the overlay's upper and work directories (same filesystem, work
    empty); the upper dir keeps the RUN's changes for layer capture.  ``user`` is a Docker USER value
    (``name``, ``uid``, ``uid:gid``, ``name:group``); ``env`` is a list of ``KEY=value``.
    ``scratch_dir`` is where the sandbox keeps its per-run files (generated /etc files, overlay
    link names, mount stubs); empty means next to ``work_dir``.
    ``tty`` runs the command on a terminal: ``process.run`` is then given the slave side of a pty, which
    becomes the command's stdin, stdout, stderr and controlling terminal (the stream modes are ignored).
    """

    argv: tuple[str, ...]
    lower_dirs: tuple[str, ...]
    upper_dir: str
    work_dir: str
    env: tuple[str, ...] = ()
    cwd: str = "/"
    user: str = ""
    hostname: str = DEFAULT_HOSTNAME
    network: str = "host"
    binds: tuple[BindMount, ...] = ()
    tmpfs: tuple[TmpfsMount, ...] = ()
    overlays: tuple[OverlayMount, ...] = ()
    secrets: tuple[SecretMount, ...] = ()
    extra_hosts: tuple[HostEntry, ...] = ()
    security: str = "sandbox"
    shm_size: int = DEFAULT_SHM_SIZE
    ulimits: tuple[Ulimit, ...] = ()
    stdin: str = "null"
    stdout: str = "pipe"
    stderr: str = "pipe"
    scratch_dir: str = ""
    tty: bool = False
    # --- what the container runtime adds (builds leave these at their defaults) ---
    netns: str = ""                     # a network namespace file to join instead of host / a new empty one
    hosts_file: str = ""                # host files bound at /etc/hosts, /etc/resolv.conf, /etc/hostname
    resolv_file: str = ""               # instead of generated ones (rewritten in place, seen live)
    hostname_file: str = ""
    cgroup_procs: tuple[str, ...] = ()  # cgroup.procs files pid 1 joins, before a cgroup namespace of its own
    pid1_command: bool = False          # the command is pid 1 (docker run), not a child of the sandbox's init
    cap_add: tuple[str, ...] = ()       # CAP_* names or "ALL", on top of docker's default set
    cap_drop: tuple[str, ...] = ()
    seccomp: bool = True                # --security-opt seccomp=unconfined turns the filter off
    no_new_privs: bool = False          # --security-opt no-new-privileges
    readonly_rootfs: bool = False       # --read-only
    devices: tuple[DeviceMapping, ...] = ()

    def __post_init__(self):
        for name in ("argv", "lower_dirs", "env", "binds", "tmpfs", "overlays", "secrets", "extra_hosts", "ulimits",
                     "cgroup_procs", "cap_add", "cap_drop", "devices"):
            value = getattr(self, name)
            if not isinstance(value, tuple):
                object.__setattr__(self, name, tuple(value))
        if not self.argv or not self.argv[0]:
            raise SandboxError("no command given to run")
        for path in self.lower_dirs:
            _absolute("lower dir", path)
        _absolute("upper dir", self.upper_dir)
        _absolute("work dir", self.work_dir)
        if self.scratch_dir:
            _absolute("scratch dir", self.scratch_dir)
        _absolute("working directory", self.cwd)
        for item in self.env:
            if "=" not in item or item.startswith("="):
                raise SandboxError(f"invalid environment entry {item!r}: want KEY=value")
            if "\0" in item:
                raise SandboxError("environment entries must not contain NUL bytes")
        _choice("network mode", self.network, NETWORK_MODES)
        _choice("security mode", self.security, SECURITY_MODES)
        if self.shm_size <= 0:
            raise SandboxError(f"invalid shm size {self.shm_size}: want a positive number of bytes")
        targets = [t for t in self.mount_targets if t not in ("/etc/hosts", "/etc/resolv.conf", "/etc/hostname")]
        if len({os.path.normpath(t) for t in targets}) != len(targets):
            raise SandboxError("two mounts have the same target")
        _choice("stdin", self.stdin, STDIN_MODES)
        _choice("stdout", self.stdout, OUTPUT_MODES)
        _choice("stderr", self.stderr, STDERR_MODES)
        if not isinstance(self.tty, bool):
            raise SandboxError(f"tty must be a boolean: {self.tty!r}")
        if not self.hostname or len(self.hostname) > 64:
            raise SandboxError(f"invalid hostname {self.hostname!r}")
        for path in (self.netns, self.hosts_file, self.resolv_file, self.hostname_file, *self.cgroup_procs):
            if path:
                _absolute("runtime file", path)
        from .caps import CAP_NUMBERS

        for name in (*self.cap_add, *self.cap_drop):
            if name != "ALL" and name not in CAP_NUMBERS:
                raise SandboxError(f"unknown capability: {name!r}")

    @property
    def mount_targets(self) -> tuple[str, ...]:
        """Paths inside the rootfs that something is mounted on (besides /proc, /dev, /sys)."""
        return ("/etc/hosts", "/etc/resolv.conf", *(("/etc/hostname",) if self.hostname_file else ()),
                *(d.target for d in self.devices), *(b.target for b in self.binds), *(t.target for t in self.tmpfs),
                *(o.target for o in self.overlays), *(s.target for s in self.secrets if s.target))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "RunSpec":
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["binds"] = tuple(BindMount(**b) for b in values.get("binds", ()))
        values["tmpfs"] = tuple(TmpfsMount(**t) for t in values.get("tmpfs", ()))
        values["overlays"] = tuple(OverlayMount(**o) for o in values.get("overlays", ()))
        values["secrets"] = tuple(SecretMount(**x) for x in values.get("secrets", ()))
        values["ulimits"] = tuple(Ulimit(**u) for u in values.get("ulimits", ()))
        values["extra_hosts"] = tuple(HostEntry(**h) for h in values.get("extra_hosts", ()))
        values["devices"] = tuple(DeviceMapping(**d) for d in values.get("devices", ()))
        return cls(**values)


@dataclass(frozen=True, slots=True)
class RunLayout:
    """The per-run scratch directory and what lives in it (created by the parent, read by the init).

    ``stubs`` is a small lower layer the sandbox owns, placed *below* the image's layers: it holds
    empty mount points (/proc, /dev, /sys, /etc/hosts, ...) so they exist in the merged view without
    being created in the upper dir.  ``links`` holds short symlink names for long lowerdir lists.
    """

    scratch: str
    rootfs: str = field(default="")
    stubs: str = field(default="")
    links: str = field(default="")
    hosts: str = field(default="")
    resolv: str = field(default="")
    plan: str = field(default="")
    stub_record: str = field(default="")
    mounts: str = field(default="")   # overlay mount points, throwaway uppers, whiteout layers, secrets tmpfs

    def __post_init__(self):
        defaults = {"rootfs": "rootfs", "stubs": "stubs", "links": "l", "hosts": "hosts",
                    "resolv": "resolv.conf", "plan": "plan.json", "stub_record": "created-stubs", "mounts": "m"}
        for name, leaf in defaults.items():
            if not getattr(self, name):
                object.__setattr__(self, name, os.path.join(self.scratch, leaf))


def _absolute(what: str, path: str) -> None:
    if not isinstance(path, str) or not path.startswith("/"):
        raise SandboxError(f"{what} must be an absolute path: {path!r}")
    if "\0" in path:
        raise SandboxError(f"{what} must not contain NUL bytes")


def _choice(what: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise SandboxError(f"invalid {what} {value!r}: want one of {', '.join(allowed)}")


__all__ = ["RunSpec", "RunLayout", "DeviceMapping", "BindMount", "TmpfsMount", "OverlayMount", "SecretMount", "Ulimit", "HostEntry", "shell_argv", "DEFAULT_HOSTNAME",
           "DEFAULT_SHELL"]
