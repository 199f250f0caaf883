"""Inside the namespaces: turn a fresh process into the RUN environment, then exec the command.

``prepare`` runs in the sandbox's pid 1 with full privileges: rootfs, pivot_root, hostname, loopback,
USER lookup in the image, WORKDIR, then the seccomp filter (loaded while CAP_SYS_ADMIN is still held,
because no_new_privs stays off as under BuildKit) and the capability cut.  ``exec_command`` runs in the
forked command process: groups, gid, uid, umask, cwd, PATH lookup, exec -- nothing it does needs more
than the default capability set.
"""

from __future__ import annotations

import os
import resource
import signal
from dataclasses import dataclass

from typing import TYPE_CHECKING

from .caps import capability_set, last_cap, restrict_capabilities
from .console import attach, give_stdio_to, mount_console, open_console
from .errors import SandboxError
from .plan import SandboxPlan
from .rootfs import HostView, make_root_readonly, pivot_root, prepare_rootfs, read_host_view
from .seccomp import build_filter
from .runmounts import secret_env
from .syscalls import PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, PR_SET_DUMPABLE, PR_SET_KEEPCAPS, PR_SET_NO_NEW_PRIVS
from .users import ExecUser, read_user_files, resolve_user

if TYPE_CHECKING:
    from .console import Console  # noqa: F401

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True, slots=True)
class Prepared:
    """Everything the command process needs after ``prepare``."""

    argv: tuple[str, ...]
    env: tuple[str, ...]
    cwd: str
    user: ExecUser
    console_slave: int = -1       # a tty run: the pty slave the command attaches to (``console.attach``)
    insecure_caps: int = 0        # --security=insecure: every capability we hold, kept across the uid change
    no_new_privs: bool = False
    cap_keep: int = -1            # >= 0: the capability set still to apply, after the user switch (containers)
    cap_top: int = 0


def build_env(env: tuple[str, ...], home: str) -> tuple[str, ...]:
    """The process environment: the spec's, last value of a key winning, plus HOME as runc adds it."""
    merged: dict[str, str] = {}
    for item in env:
        key, _, value = item.partition("=")
        merged.pop(key, None)
        merged[key] = value
    if "HOME" not in merged:
        merged["HOME"] = home or "/"
    return tuple(f"{k}={v}" for k, v in merged.items())


def make_workdir(path: str, uid: int, gid: int) -> None:
    """BuildKit's MkdirAllAndChown(cwd, 0755, user): missing components are created and owned by the
    user; existing ones are left alone.  Runs after pivot_root, so the image's symlinks stay inside."""
    current = "/"
    for part in [p for p in path.split("/") if p]:
        current = os.path.join(current, part)
        try:
            os.mkdir(current, 0o755)
        except FileExistsError:
            continue
        except OSError as err:
            raise SandboxError(f"failed to create working directory {path}: {err.strerror}") from None
        os.lchown(current, uid, gid)


def prepare(plan: SandboxPlan, sys, host: HostView | None = None,
            secret_values: dict[str, bytes] | None = None) -> tuple[Prepared, "Console | None"]:
    """Set up the rootfs and the security profile; with ``spec.tty`` also open the container's pty
    (returned, for the init to hand its master to the parent).  ``secret_values``: the RUN's secrets
    by id (files on a tmpfs of this namespace, env vars of the command; never in the plan)."""
    spec = plan.spec
    os.umask(0o022)
    # Not dumpable: the RUN (same uid, same capabilities once they are cut) cannot ptrace its pid 1 or
    # read its /proc files; the command's exec makes itself dumpable again.
    sys.prctl(PR_SET_DUMPABLE, 0)
    host = read_host_view() if host is None else host
    top_cap = last_cap()
    keep = capability_set(spec.cap_add, spec.cap_drop, top_cap)
    profile = build_filter(keep) if spec.security != "insecure" and spec.seccomp else None
    try:
        sys.load_libraries(seccomp=profile)
        prepare_rootfs(sys, spec, plan.layout, plan.overlay, host, secret_values)
        pivot_root(sys, plan.layout.rootfs)
        if spec.readonly_rootfs:
            make_root_readonly(sys)
        sys.sethostname(spec.hostname)
        if spec.network == "none":
            sys.set_loopback_up()
        console = None
        if spec.tty:
            console = open_console()
            mount_console(sys, console)
    except OSError as err:
        raise SandboxError(f"failed to set up the sandbox: {err.strerror or err}") from None
    passwd, group = read_user_files("/")
    user = resolve_user(spec.user, passwd, group)
    make_workdir(spec.cwd, user.uid, user.gid)
    env = build_env(spec.env + secret_env(spec, secret_values or {}), user.home)
    set_ulimits(spec.ulimits)
    insecure_caps = 0
    cap_keep = -1
    try:
        if spec.security == "insecure":     # BuildKit's insecure mode: every capability, no seccomp filter
            insecure_caps = sys.capget()[1]
            restrict_capabilities(sys, insecure_caps, top_cap, inheritable=True)
        else:
            if profile is not None:
                sys.seccomp_load(profile)
            if spec.pid1_command:
                cap_keep = keep         # pid 1 becomes the command: cut after the user switch, as runc does
            else:
                restrict_capabilities(sys, keep, top_cap)
    except OSError as err:
        raise SandboxError(f"failed to apply the security profile: {err.strerror or err}") from None
    return Prepared(spec.argv, env, spec.cwd, user, console.slave if console else -1, insecure_caps,
                    spec.no_new_privs, cap_keep, top_cap), console


def set_ulimits(ulimits) -> None:
    """``--ulimit``: set in pid 1, inherited by the command.  Raising a hard limit needs
    CAP_SYS_RESOURCE, which a builder may lack: that is an error naming the limit."""
    for limit in ulimits:
        number = getattr(resource, f"RLIMIT_{limit.name.upper()}")
        soft = resource.RLIM_INFINITY if limit.soft < 0 else limit.soft
        hard = resource.RLIM_INFINITY if limit.hard < 0 else limit.hard
        try:
            resource.setrlimit(number, (soft, hard))
        except (OSError, ValueError) as err:
            current = resource.getrlimit(number)[1]
            shown = "unlimited" if current == resource.RLIM_INFINITY else current
            raise SandboxError(f"failed to set ulimit {limit.name}={limit.soft}:{limit.hard} (the hard limit here "
                               f"is {shown} and only CAP_SYS_RESOURCE may raise it): {err}") from None


def keep_all_capabilities(sys, mask: int) -> None:
    """After the uid change, restore every capability and make them ambient, so that they survive the
    exec of a non-root user's command too (BuildKit's insecure spec sets all five sets)."""
    sys.capset(mask, mask, mask)
    for cap in range(64):
        if mask & (1 << cap):
            sys.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap)


def lookup_executable(name: str, env: tuple[str, ...]) -> str:
    """Go's exec.LookPath against the process's PATH, with runc's error wording."""
    if "/" in name:
        if not os.path.exists(name):
            raise SandboxError(f'unable to start container process: exec: "{name}": stat {name}: '
                               "no such file or directory")
        return name
    path = DEFAULT_PATH
    for item in env:
        if item.startswith("PATH="):
            path = item[5:]
    for directory in path.split(":"):
        candidate = os.path.join(directory or ".", name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    raise SandboxError(f'unable to start container process: exec: "{name}": executable file not found in $PATH')


def _close_extra_fds() -> None:
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd > 2:
            try:
                os.set_inheritable(fd, False)
            except OSError:
                pass


def _chdir(sys, path: str, final: bool) -> bool:
    try:
        sys.chdir(path)
        return True
    except PermissionError:
        if not final:
            return False
        err_text = "permission denied"
    except OSError as err:
        err_text = (err.strerror or str(err)).lower()
    raise SandboxError(f"unable to start container process: chdir to cwd ({path!r}) set in config.json failed: "
                       f"{err_text}")


def exec_command(prepared: Prepared, sys) -> None:
    """Become the user and exec; returns only by raising ``SandboxError``."""
    user = prepared.user
    # Like runc: chdir while still root (the user may lack search permission on a parent), and again
    # as the user only if root was refused.
    retry_chdir = not _chdir(sys, prepared.cwd, final=False)
    try:
        if prepared.console_slave >= 0:
            attach(prepared.console_slave)
        give_stdio_to(user.uid)
    except OSError as err:
        raise SandboxError(f"unable to start container process: failed to set up the terminal: "
                           f"{err.strerror}") from None
    try:
        if prepared.cap_keep >= 0:        # caps are cut after the switch (runc's order): keep them across it
            sys.prctl(PR_SET_KEEPCAPS, 1)
        sys.setgroups(user.groups)
        sys.setresgid(user.gid, user.gid, user.gid)
        if prepared.insecure_caps:
            sys.prctl(PR_SET_KEEPCAPS, 1)
        sys.setresuid(user.uid, user.uid, user.uid)
        if prepared.cap_keep >= 0:
            permitted = sys.capget()[1]
            sys.capset(permitted, permitted, 0)     # the uid change emptied the effective set
            restrict_capabilities(sys, prepared.cap_keep, prepared.cap_top)
            sys.prctl(PR_SET_KEEPCAPS, 0)
        if prepared.insecure_caps:
            keep_all_capabilities(sys, prepared.insecure_caps)
    except OSError as err:
        raise SandboxError(f"unable to start container process: failed to set user {user.uid}:{user.gid}: "
                           f"{err.strerror}") from None
    if retry_chdir:
        _chdir(sys, prepared.cwd, final=True)
    if prepared.no_new_privs:
        sys.prctl(PR_SET_NO_NEW_PRIVS, 1)
    path = lookup_executable(prepared.argv[0], prepared.env)
    for sig in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT,
                signal.SIGUSR1, signal.SIGUSR2, signal.SIGWINCH):
        signal.signal(sig, signal.SIG_DFL)
    _close_extra_fds()
    try:
        os.execve(path, list(prepared.argv), dict(e.split("=", 1) for e in prepared.env))
    except OSError as err:
        raise SandboxError(f'unable to start container process: exec: "{prepared.argv[0]}": '
                           f"{(err.strerror or str(err)).lower()}") from None


__all__ = ["Prepared", "prepare", "exec_command", "build_env", "make_workdir", "lookup_executable"]
