"""The build flags that shape every RUN: ``--secret``, ``--ssh``, ``--allow``, ``--add-host``,
``--ulimit``, ``--shm-size`` -- checked before anything is built, as buildx checks them."""

from __future__ import annotations

import resource

ENTITLEMENTS = ("network.host", "security.insecure")
_RLIMITS = {"as": "AS", "core": "CORE", "cpu": "CPU", "data": "DATA", "fsize": "FSIZE", "locks": "LOCKS",
            "memlock": "MEMLOCK", "msgqueue": "MSGQUEUE", "nice": "NICE", "nofile": "NOFILE", "nproc": "NPROC",
            "rss": "RSS", "rtprio": "RTPRIO", "rttime": "RTTIME", "sigpending": "SIGPENDING", "stack": "STACK"}


def _usage(message: str):
    from ..errors import UsageError

    return UsageError(message)


def parse_allow(values) -> frozenset:
    out = set()
    for value in values:
        for item in value.split(","):
            item = item.strip()
            if item not in ENTITLEMENTS:
                raise _usage(f"invalid entitlement: {item}")
            out.add(item)
    return frozenset(out)


def parse_add_host(values) -> tuple:
    """``name:ip`` (or ``name=ip``; an IPv6 address may contain colons: the name ends at the first)."""
    from ..sandbox.spec import HostEntry
    from ..errors import PybuildError

    out = []
    for value in values:
        if "=" in value:
            name, _, ip = value.partition("=")
        else:
            name, sep, ip = value.partition(":")
            if not sep:
                raise _usage(f"invalid host {value}")
        ip = ip.strip("[]")
        try:
            out.append(HostEntry(name, ip))
        except PybuildError:
            raise _usage(f"invalid IP address in add-host: {ip!r}") from None
    return tuple(out)


def _limit(text: str) -> int:
    if text in ("-1", "unlimited"):
        return -1
    if not text.isdigit():
        raise ValueError(text)
    return int(text)


def parse_ulimits(values) -> tuple:
    """``name=soft[:hard]`` (go-units). A hard limit above this process's own cannot be granted
    (that needs CAP_SYS_RESOURCE): refused here, naming the limit, rather than failing in the RUN."""
    from ..sandbox.spec import Ulimit
    from ..errors import PybuildError

    out = {}
    for value in values:
        name, eq, limits = value.partition("=")
        if not eq:
            raise _usage(f"invalid ulimit argument: {value}")
        if name not in _RLIMITS:
            raise _usage(f"invalid ulimit type: {name}")
        soft_text, _, hard_text = limits.partition(":")
        try:
            soft = _limit(soft_text)
            hard = _limit(hard_text) if hard_text else soft
        except ValueError:
            raise _usage(f"invalid ulimit argument: {value}") from None
        try:
            limit = Ulimit(name, soft, hard)
        except PybuildError as err:
            raise _usage(err.message) from None
        current = resource.getrlimit(getattr(resource, f"RLIMIT_{_RLIMITS[name]}"))[1]
        if current != resource.RLIM_INFINITY and (hard == -1 or hard > current):
            shown = "unlimited" if hard == -1 else hard
            raise _usage(f"--ulimit {value}: the hard limit {shown} is above this process's hard limit {current} for "
                         f"{name} (raising it needs CAP_SYS_RESOURCE)")
        out[name] = limit
    return tuple(out.values())


def parse_shm_size(value: str | None) -> int | None:
    from ..dockerfile.runmount import ram_in_bytes

    if not value:
        return None
    try:
        size = ram_in_bytes(value)
    except ValueError:
        raise _usage(f"invalid shm-size {value!r}: want bytes or a size like 128m") from None
    if size <= 0:
        raise _usage(f"invalid shm-size {value!r}: must be positive")
    return size


def run_options(secrets, ssh, allow, add_hosts, ulimits, shm_size) -> dict:
    """ExecOptions fields for the RUN flags."""
    from ..build.runmounts import parse_secret_flag, parse_ssh_flag

    parsed_secrets = {}
    for value in secrets:
        source = parse_secret_flag(value)
        parsed_secrets[source.id] = source
    parsed_ssh = {}
    for value in ssh:
        source = parse_ssh_flag(value)
        parsed_ssh[source.id] = source
    return {"secrets": parsed_secrets, "ssh": parsed_ssh, "allow": parse_allow(allow),
            "extra_hosts": parse_add_host(add_hosts), "ulimits": parse_ulimits(ulimits),
            "shm_size": parse_shm_size(shm_size)}


__all__ = ["run_options", "parse_allow", "parse_add_host", "parse_ulimits", "parse_shm_size"]


FLAGS = ("--secret", "--ssh", "--allow", "--add-host", "--ulimit", "--shm-size")


def run_flag_options(command):
    """The click options of the RUN flags; the command takes them as ``**run_flags`` and passes them to
    ``run_options``."""
    import click

    for decorator in reversed((
        click.option("--secret", "secrets", multiple=True, metavar="id=ID[,src=FILE|,env=VAR]",
                     help="Secret to expose to RUN --mount=type=secret."),
        click.option("--ssh", multiple=True, metavar="default|ID[=SOCKET]",
                     help="SSH agent socket to expose to RUN --mount=type=ssh."),
        click.option("--allow", multiple=True, metavar="ENTITLEMENT",
                     help="Allow extra privileged entitlement (network.host, security.insecure)."),
        click.option("--add-host", "add_hosts", multiple=True, metavar="HOST:IP",
                     help="Add a custom host-to-IP mapping (/etc/hosts of every RUN)."),
        click.option("--ulimit", "ulimits", multiple=True, metavar="NAME=SOFT[:HARD]", help="Ulimit options."),
        click.option("--shm-size", default=None, metavar="SIZE", help="Size of /dev/shm in RUN (default 64m)."),
    )):
        command = decorator(command)
    return command
