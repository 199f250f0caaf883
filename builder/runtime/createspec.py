"""``create``: from an image and ``docker run`` flags to a container's config (docker's rules).

ENTRYPOINT + CMD (arguments after the image replace CMD; ``--entrypoint`` replaces ENTRYPOINT and clears
CMD), the image's Env plus HOSTNAME (and TERM with -t) and ``-e``/``--env-file``, WorkingDir or ``-w``,
User or ``-u``, StopSignal, HEALTHCHECK, exposed ports and VOLUMEs (anonymous volumes).
"""

from __future__ import annotations

import os
import re
import secrets
from dataclasses import dataclass, field

from .errors import ContainerError
from .records import ContainerConfig, HealthConfig, PortSpec, RestartPolicy, now_rfc3339

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class RunOptions:
    """The ``run``/``create`` flags, as typed (checked here)."""

    name: str = ""
    env: tuple = ()
    env_files: tuple = ()
    workdir: str | None = None
    user: str | None = None
    entrypoint: str | None = None
    hostname: str | None = None
    interactive: bool = False
    tty: bool = False
    rm: bool = False
    network: str = "bridge"
    network_aliases: tuple = ()
    publish: tuple = ()
    publish_all: bool = False
    expose: tuple = ()
    volumes: tuple = ()
    mounts: tuple = ()
    tmpfs: tuple = ()
    memory: str = ""
    memory_swap: str = ""
    cpus: str = ""
    cpu_shares: int = 0
    pids_limit: int = 0
    read_only: bool = False
    cap_add: tuple = ()
    cap_drop: tuple = ()
    privileged: bool = False
    devices: tuple = ()
    init: bool = False
    restart: str = "no"
    security_opt: tuple = ()
    labels: tuple = ()
    add_hosts: tuple = ()
    dns: tuple = ()
    stop_signal: str | None = None
    stop_timeout: int | None = None
    health_cmd: str | None = None
    health_interval: float | None = None
    health_timeout: float | None = None
    health_retries: int | None = None
    health_start_period: float | None = None
    no_healthcheck: bool = False
    ulimits: tuple = ()
    shm_size: str = ""
    extra: dict = field(default_factory=dict)


def runtime_env(config: ContainerConfig) -> tuple:
    """What the process gets: PATH if the config has none, HOSTNAME, TERM with a tty, then the config's
    Env (docker's daemon adds these at start; they are not part of the container's Config.Env)."""
    env: dict[str, str] = {}
    if not any(e.startswith("PATH=") for e in config.env):
        env["PATH"] = DEFAULT_PATH
    env["HOSTNAME"] = config.hostname
    if config.tty:
        env["TERM"] = "xterm"
    for entry in config.env:
        key, _, value = entry.partition("=")
        env.pop(key, None)
        env[key] = value
    return tuple(f"{k}={v}" for k, v in env.items())


def _env(image_env, options: RunOptions, hostname: str) -> tuple:
    env: dict[str, str] = {}
    for entry in image_env:
        key, _, value = entry.partition("=")
        env[key] = value
    for path in options.env_files:
        try:
            with open(path, encoding="utf-8") as fh:
                lines = fh.read().splitlines()
        except OSError as err:
            raise ContainerError(f"open {path}: {err.strerror.lower()}") from None
        for line in lines:
            line = line.strip()
            if line and not line.startswith("#"):
                key, eq, value = line.partition("=")
                if eq:
                    env[key] = value
                elif key in os.environ:
                    env[key] = os.environ[key]
    for item in options.env:
        key, eq, value = item.partition("=")
        if not key:
            raise ContainerError(f"invalid environment variable: {item}")
        if eq:
            env[key] = value
        elif key in os.environ:
            env[key] = os.environ[key]
    return tuple(f"{k}={v}" for k, v in env.items())


_PORT = re.compile(r"^(?:(?:(?P<ip>\[[0-9a-fA-F:.]+\]|[0-9.]+):)?(?P<host>\d*):)?(?P<ctr>\d+)(?:/(?P<proto>tcp|udp|sctp))?$")


def parse_ports(values) -> tuple[PortSpec, ...]:
    """``-p [ip:][hostport:]containerport[/proto]`` (docker's forms without ranges)."""
    out = []
    for value in values:
        m = _PORT.match(value)
        if not m:
            raise ContainerError(f'invalid port specification: "{value}"')
        ctr = int(m["ctr"])
        host = int(m["host"]) if m["host"] else 0
        if not 0 < ctr < 65536 or not 0 <= host < 65536:
            raise ContainerError(f'invalid port specification: "{value}"')
        out.append(PortSpec(ctr, m["proto"] or "tcp", (m["ip"] or "").strip("[]"), host))
    return tuple(out)


def _health(image_health, options: RunOptions) -> HealthConfig:
    if options.no_healthcheck:
        return HealthConfig(test=("NONE",))
    test: tuple = ()
    interval, timeout, start_period, retries = 30.0, 30.0, 0.0, 3
    if image_health is not None:
        test = tuple(image_health.test)
        interval = image_health.interval / 1e9 or interval
        timeout = image_health.timeout / 1e9 or timeout
        start_period = image_health.start_period / 1e9 or start_period
        retries = image_health.retries or retries
    if options.health_cmd is not None:
        test = ("CMD-SHELL", options.health_cmd)
    if options.health_interval is not None:
        interval = options.health_interval
    if options.health_timeout is not None:
        timeout = options.health_timeout
    if options.health_start_period is not None:
        start_period = options.health_start_period
    if options.health_retries is not None:
        retries = options.health_retries
    return HealthConfig(test, interval, timeout, start_period, retries)


def _devices(values) -> tuple:
    out = []
    for value in values:
        parts = value.split(":")
        host = parts[0]
        target = parts[1] if len(parts) > 1 and parts[1].startswith("/") else host
        perms = parts[-1] if len(parts) > 1 and not parts[-1].startswith("/") else "rwm"
        if not os.path.exists(host):
            raise ContainerError(f"error gathering device information while adding custom device {host!r}: "
                                 "no such file or directory")
        out.append((host, target, perms))
    return tuple(out)


def _size(text: str) -> int:
    from ..sandbox.cgroups import parse_memory

    return parse_memory(text, flag="--shm-size")


def build_config(root, image: str, image_id: str, image_config, command: tuple, options: RunOptions,
                 container_id: str | None = None, name: str = "") -> ContainerConfig:
    cfg = image_config.config
    cid = container_id or secrets.token_hex(32)
    if options.entrypoint is not None:
        entrypoint = (options.entrypoint,) if options.entrypoint else ()
        cmd = tuple(command)
    else:
        entrypoint = tuple(cfg.entrypoint)
        cmd = tuple(command) if command else tuple(cfg.cmd)
    argv = entrypoint + cmd
    if not argv:
        raise ContainerError("No command specified", image)
    if options.rm and options.restart not in ("", "no"):
        raise ContainerError("Conflicting options: --restart and --rm")
    network = options.network or "bridge"
    if network == "default":
        network = "bridge"
    hostname = options.hostname or (os.uname().nodename if network == "host" else cid[:12])
    from ..sandbox.cgroups import limits_from_flags

    limits = limits_from_flags(memory=options.memory, memory_swap=options.memory_swap, cpus=options.cpus,
                               cpu_shares=options.cpu_shares, pids_limit=options.pids_limit)
    ports = parse_ports(options.publish)
    if (ports or options.publish_all) and network in ("host", "none"):
        ports = ()
    exposed = tuple(dict.fromkeys(tuple(cfg.exposed_ports) + tuple(
        e if "/" in e else f"{e}/tcp" for e in options.expose) + tuple(f"{p.container_port}/{p.proto}" for p in ports)))
    labels = dict(cfg.labels)
    for item in options.labels:
        key, _, value = item.partition("=")
        labels[key] = value
    from ..sandbox.spec import ULIMIT_NAMES

    ulimits = []
    for item in options.ulimits:
        kind, _, values = item.partition("=")
        soft, _, hard = values.partition(":")
        if kind not in ULIMIT_NAMES or not soft.lstrip("-").isdigit():
            raise ContainerError(f"invalid ulimit argument: {item}")
        ulimits.append((kind, int(soft), int(hard or soft)))
    mounts, volumes, anonymous = _mounts(root, options, tuple(cfg.volumes), image_id)
    return ContainerConfig(
        id=cid, name=name, created=now_rfc3339(), image=image, image_id=image_id, path=argv[0], args=argv[1:],
        entrypoint=entrypoint, cmd=cmd, env=_env(cfg.env, options, hostname),
        working_dir=options.workdir if options.workdir is not None else (cfg.working_dir or ""),
        user=options.user if options.user is not None else cfg.user, hostname=hostname, tty=options.tty,
        open_stdin=options.interactive, labels=labels, exposed_ports=exposed, network=network,
        network_aliases=tuple(options.network_aliases), ports=ports, publish_all=options.publish_all,
        mounts=mounts, volumes=volumes, anonymous_volumes=anonymous,
        memory=limits.memory, memory_swap=limits.memory_swap, cpus=limits.cpus, cpu_shares=limits.cpu_shares,
        pids_limit=limits.pids, restart=RestartPolicy.parse(options.restart), auto_remove=options.rm,
        init=options.init, read_only=options.read_only, cap_add=_caps(options.cap_add), cap_drop=_caps(options.cap_drop),
        privileged=options.privileged, devices=_devices(options.devices), security_opt=tuple(options.security_opt),
        extra_hosts=tuple(options.add_hosts), dns=tuple(options.dns),
        stop_signal=options.stop_signal or cfg.stop_signal or "SIGTERM",
        stop_timeout=10 if options.stop_timeout is None else options.stop_timeout,
        healthcheck=_health(cfg.healthcheck, options), ulimits=tuple(ulimits),
        shm_size=_size(options.shm_size) if options.shm_size else 64 << 20)


def _caps(values) -> tuple:
    out = []
    for value in values:
        for name in value.split(","):
            name = name.strip().upper()
            if name and name != "ALL" and not name.startswith("CAP_"):
                name = "CAP_" + name
            if name:
                out.append(name)
    from ..sandbox.caps import CAP_NUMBERS

    for name in out:
        if name != "ALL" and name not in CAP_NUMBERS:
            raise ContainerError(f"invalid capability: {name}")
    return tuple(out)


def _mounts(root, options: RunOptions, image_volumes: tuple, image_id: str):
    """-v/--mount/--tmpfs and the image's VOLUMEs -> (mounts, volume names, anonymous volume names)."""
    from .volumeplan import plan_mounts

    return plan_mounts(root, options, image_volumes, image_id)


__all__ = ["RunOptions", "build_config", "parse_ports", "runtime_env"]
