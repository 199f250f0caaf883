"""What a container is on disk: its configuration (decided once, at create) and its state (changing).

Both are plain JSON documents in the container's directory, written atomically (temp file + rename)
so that any pybuild process and the container's monitor always read a whole document.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field, fields, replace

ZERO_TIME = "0001-01-01T00:00:00Z"


def now_rfc3339() -> str:
    """Docker's timestamp format with nanoseconds, in UTC."""
    ns = time.time_ns()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 10**9)) + f".{ns % 10**9:09d}Z"


def parse_rfc3339(text: str) -> float:
    """Seconds since the epoch of a timestamp written by ``now_rfc3339`` (0 for the zero time)."""
    if not text or text.startswith("0001-"):
        return 0.0
    import calendar

    main, _, frac = text.rstrip("Z").partition(".")
    return calendar.timegm(time.strptime(main, "%Y-%m-%dT%H:%M:%S")) + (float(f"0.{frac}") if frac else 0.0)


@dataclass(frozen=True)
class RestartPolicy:
    """``--restart no|on-failure[:N]|always|unless-stopped``."""

    name: str = "no"
    max_retries: int = 0

    @classmethod
    def parse(cls, text: str) -> "RestartPolicy":
        from .errors import ContainerError

        name, _, count = (text or "no").partition(":")
        if name not in ("no", "on-failure", "always", "unless-stopped"):
            raise ContainerError(f"invalid restart policy '{name}'")
        if count and name != "on-failure":
            raise ContainerError(f"maximum retry count cannot be used with restart policy '{name}'")
        try:
            retries = int(count) if count else 0
        except ValueError:
            raise ContainerError(f"invalid restart policy format '{text}'") from None
        if retries < 0:
            raise ContainerError("maximum retry count cannot be negative")
        return cls(name, retries)


@dataclass(frozen=True)
class HealthConfig:
    """The HEALTHCHECK in effect (image or ``--health-*`` flags); durations in seconds."""

    test: tuple = ()
    interval: float = 30.0
    timeout: float = 30.0
    start_period: float = 0.0
    retries: int = 3

    @property
    def enabled(self) -> bool:
        return bool(self.test) and self.test[0] != "NONE"


@dataclass(frozen=True)
class Mount:
    """A mount of the container as ``inspect`` shows it and the sandbox needs it."""

    type: str            # bind | volume | tmpfs
    source: str          # host path (bind, volume's data dir) or "" (tmpfs)
    destination: str
    readonly: bool = False
    name: str = ""       # the volume's name
    size: int = 0        # tmpfs size
    mode: int = 0o1777   # tmpfs mode
    noexec: bool = False  # tmpfs flags (docker's --tmpfs: noexec,nosuid,nodev by default)
    nodev: bool = False


@dataclass(frozen=True)
class PortSpec:
    """One ``-p [ip:][hostport:]ctrport[/proto]`` (host_port 0: any free port)."""

    container_port: int
    proto: str = "tcp"
    host_ip: str = ""
    host_port: int = 0


@dataclass(frozen=True)
class ContainerConfig:
    """Everything ``create`` decided; never changes afterwards."""

    id: str
    name: str
    created: str
    image: str                      # as the user named it
    image_id: str
    path: str                       # argv[0] and the rest, as docker's Path/Args
    args: tuple = ()
    entrypoint: tuple = ()
    cmd: tuple = ()
    env: tuple = ()
    working_dir: str = ""
    user: str = ""
    hostname: str = ""
    domainname: str = ""
    tty: bool = False
    open_stdin: bool = False
    labels: dict = field(default_factory=dict)
    exposed_ports: tuple = ()       # "80/tcp", image's and --expose
    network: str = "bridge"
    network_aliases: tuple = ()
    ports: tuple = ()               # PortSpec
    publish_all: bool = False
    mounts: tuple = ()              # Mount
    volumes: tuple = ()             # volume names in use (anonymous ones too)
    anonymous_volumes: tuple = ()
    memory: int = 0
    memory_swap: int = 0
    cpus: float = 0.0
    cpu_shares: int = 0
    pids_limit: int = 0
    restart: RestartPolicy = RestartPolicy()
    auto_remove: bool = False
    init: bool = False
    read_only: bool = False
    cap_add: tuple = ()
    cap_drop: tuple = ()
    privileged: bool = False
    devices: tuple = ()             # (host, target, permissions)
    security_opt: tuple = ()
    extra_hosts: tuple = ()         # "name:ip"
    dns: tuple = ()
    stop_signal: str = "SIGTERM"
    stop_timeout: int = 10
    healthcheck: HealthConfig = HealthConfig()
    ulimits: tuple = ()             # (name, soft, hard)
    shm_size: int = 64 << 20

    @property
    def argv(self) -> tuple[str, ...]:
        return (self.path, *self.args)

    @property
    def short_id(self) -> str:
        return self.id[:12]

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "ContainerConfig":
        known = {f.name for f in fields(cls)}
        values = {k: (tuple(v) if isinstance(v, list) else v) for k, v in data.items() if k in known}
        values["restart"] = RestartPolicy(**data.get("restart", {}))
        health = dict(data.get("healthcheck") or {})
        health["test"] = tuple(health.get("test", ()))
        values["healthcheck"] = HealthConfig(**health)
        values["mounts"] = tuple(Mount(**m) for m in data.get("mounts", ()))
        values["ports"] = tuple(PortSpec(**p) for p in data.get("ports", ()))
        values["devices"] = tuple(tuple(d) for d in data.get("devices", ()))
        values["ulimits"] = tuple(tuple(u) for u in data.get("ulimits", ()))
        return cls(**values)


@dataclass(frozen=True)
class ContainerState:
    """Where the container is in its life; written by the CLI (create, start, rm) and the monitor."""

    status: str = "created"         # created | running | restarting | exited | dead | removing
    pid: int = 0                    # the container's pid 1, as the host sees it
    pid_start: int = 0
    monitor_pid: int = 0
    monitor_start: int = 0          # the monitor's start time (/proc/PID/stat field 22): pid reuse check
    exit_code: int = 0
    oom_killed: bool = False
    error: str = ""
    started_at: str = ZERO_TIME
    finished_at: str = ZERO_TIME
    restart_count: int = 0
    stop_requested: bool = False    # a user stop/kill: no restart by policy
    paused: bool = False            # frozen by ``pause``
    health: dict | None = None      # {"Status", "FailingStreak", "Log": [...]}
    network: dict = field(default_factory=dict)   # the endpoint: IPAddress, Gateway, Ports, ...

    @property
    def running(self) -> bool:
        return self.status in ("running", "restarting")

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "ContainerState":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def but(self, **changes) -> "ContainerState":
        return replace(self, **changes)


def write_json(path: str, data: dict) -> None:
    """Atomically replace ``path`` (readers never see half a document)."""
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh)
    os.replace(tmp, path)


def read_json(path: str) -> dict:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


__all__ = ["ContainerConfig", "ContainerState", "RestartPolicy", "HealthConfig", "Mount", "PortSpec",
           "now_rfc3339", "parse_rfc3339", "write_json", "read_json", "ZERO_TIME"]
