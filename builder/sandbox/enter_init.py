"""The process ``enter.run_in`` starts: joins a running container and runs one command in it.

Started as ``python -I -S -c BOOT PIDFD SPEC STATUS CONSOLE`` (inherited descriptors; -1: none), it
is single-threaded, which ``setns`` into a mount namespace requires.  Before leaving the host it
loads every module and library it will need (the host's Python is out of reach afterwards), makes
itself non-dumpable (the container must not reach the host's interpreter through /proc/<pid>/exe),
joins the target's cgroups and then its namespaces through the pidfd.  It forks: the child is in the
container's pid namespace, sets up the terminal, user, environment and security profile and execs;
this process forwards signals to it and reports how it ended on the status channel (``exit``,
``signal``, or ``exec_error``/``error``/``gone`` before the exec).
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import signal
import sys
from dataclasses import replace

from . import status
from .caps import last_cap
from .console import open_console, send_master
from .container import Prepared, build_env, exec_command
from .errors import SandboxError
from .signals import forward_signals
from .seccomp import build_filter
from .syscalls import (
    CLONE_NEWCGROUP,
    CLONE_NEWIPC,
    CLONE_NEWNET,
    CLONE_NEWNS,
    CLONE_NEWPID,
    CLONE_NEWUTS,
    PR_SET_DUMPABLE,
    PR_SET_NO_NEW_PRIVS,
    PR_SET_PDEATHSIG,
    Syscalls,
)
from .users import read_user_files, resolve_user

SETUP_FAILED = 125
EXEC_FAILED = 126
NAMESPACES = CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWNET | CLONE_NEWPID | CLONE_NEWCGROUP | CLONE_NEWNS


def setns(fd: int, flags: int) -> None:
    """``setns(2)`` (os.setns is Python 3.12+); with a pidfd, every namespace in ``flags`` at once."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(ctypes.c_int(fd), ctypes.c_int(flags)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


def preload(sys_: Syscalls, filt) -> None:
    """Everything the seccomp filter needs, loaded (and compiled, where the kernel seam can) while the
    host's files are still reachable: after setns(mnt) only the container's are."""
    if filt is None:
        sys_.load_libraries()
        return
    try:
        sys_.load_libraries(seccomp=filt)
    except TypeError:                   # a kernel seam that compiles at load time only
        sys_.load_libraries()


def join_cgroups(procs_files) -> None:
    for path in procs_files:
        try:
            with open(path, "w") as fh:
                fh.write(str(os.getpid()))
        except OSError as err:
            raise SandboxError(f"failed to join the container's cgroup {os.path.dirname(path)}: "
                               f"{err.strerror or err}") from None


def container_limits(pid: int) -> list[tuple[int, tuple[int, int]]]:
    """The resource limits of the container's process: an exec gets the container's (its ulimits),
    not the caller's."""
    import resource

    out = []
    for name in sorted(n for n in dir(resource) if n.startswith("RLIMIT_")):
        number = getattr(resource, name)
        try:
            out.append((number, resource.prlimit(pid, number)))
        except (OSError, ValueError):
            continue
    return out


def _set_limits(limits) -> None:
    import resource

    for number, value in limits:
        try:
            resource.setrlimit(number, value)
        except (OSError, ValueError):
            pass


def _check_cwd(path: str) -> None:
    """runc's error for a working directory that cannot be entered even as root (Go's %q quoting);
    one only the user may not enter is left to ``exec_command``, which retries as the user."""
    try:
        os.chdir(path)
    except PermissionError:
        return
    except OSError as err:
        quoted = '"' + path.replace("\\", "\\\\").replace('"', '\\"') + '"'
        raise SandboxError(f"unable to start container process: chdir to cwd ({quoted}) set in config.json failed: "
                           f"{(err.strerror or str(err)).lower()}") from None


def _child(spec: dict, sys_: Syscalls, status_fd: int, console_fd: int, top_cap: int, filt, limits=()) -> None:
    """In the container's namespaces: terminal, user, env, security profile, then exec."""
    try:
        try:
            if spec.get("detach"):
                os.setsid()                     # outlives us: its own session, no parent-death signal
            else:
                sys_.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
            os.umask(0o022)
            console = None
            if spec["tty"]:
                console = open_console("/dev")
                send_master(console_fd, console)
                os.close(console.master)
            if console_fd >= 0:
                os.close(console_fd)
            passwd, group = read_user_files("/")
            try:
                user = resolve_user(spec["user"], passwd, group)
            except SandboxError as err:         # docker reports it as is (exit 126), not as runc's error
                status.send(status_fd, user_error=err.message)
                os._exit(EXEC_FAILED)
            # docker's exec user: the primary gid is also the first supplementary group
            user = replace(user, groups=tuple(dict.fromkeys((user.gid, *user.groups))))
            env = build_env(tuple(spec["env"]), user.home)
            if spec["no_new_privs"]:
                sys_.prctl(PR_SET_NO_NEW_PRIVS, 1)
            mask = spec["caps"]
            if spec["privileged"]:
                mask = sys_.capget()[1]
            if filt is not None:
                sys_.seccomp_load(filt)         # while CAP_SYS_ADMIN is held: no_new_privs stays off
        except SandboxError:
            raise
        except OSError as err:
            raise SandboxError(f"failed to set up the exec process: {err.strerror or err}") from None
        _check_cwd(spec["cwd"])
        # the capabilities are cut after the user switch, as runc does (so --cap-drop ALL still works)
        prepared = Prepared(tuple(spec["argv"]), env, spec["cwd"], user, console.slave if console else -1,
                            cap_keep=mask, cap_top=top_cap)
        _set_limits(limits)
        exec_command(prepared, sys_)
    except SandboxError as err:
        status.send(status_fd, exec_error=err.message)
    except BaseException as err:  # noqa: BLE001 - report whatever happened, never return
        status.send(status_fd, error=f"exec setup failed: {type(err).__name__}: {err}")
    os._exit(EXEC_FAILED)


def main(argv: list[str] | None = None) -> None:
    args = [int(a) for a in (sys.argv if argv is None else argv)[1:5]]
    pidfd, spec_fd, status_fd, console_fd = args
    for fd in (pidfd, spec_fd, status_fd, console_fd):
        if fd >= 0:
            os.set_inheritable(fd, False)
    sys_ = Syscalls()
    try:
        with os.fdopen(spec_fd, "rb") as fh:
            payload = json.loads(fh.read())
        spec = payload["spec"]
        sys_.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != payload["parent"]:
            os._exit(SETUP_FAILED)          # the caller died before PDEATHSIG was armed
        sys_.prctl(PR_SET_DUMPABLE, 0)
        top_cap = last_cap()
        filt = build_filter(spec["caps"]) if spec["seccomp"] and not spec["privileged"] else None
        preload(sys_, filt)
        limits = container_limits(payload["pid"])
        join_cgroups(payload["cgroup_procs"])
        try:
            setns(pidfd, NAMESPACES)
        except OSError as err:
            if err.errno == errno.ESRCH:
                status.send(status_fd, gone=f"process {payload['pid']} is not running")
                os._exit(SETUP_FAILED)
            raise SandboxError(f"failed to enter the container's namespaces: {err.strerror}") from None
        os.close(pidfd)
    except SandboxError as err:
        status.send(status_fd, error=err.message)
        os._exit(SETUP_FAILED)
    except BaseException as err:  # noqa: BLE001
        status.send(status_fd, error=f"exec setup failed: {type(err).__name__}: {err}")
        os._exit(SETUP_FAILED)
    exec_r, exec_w = os.pipe()                  # close-on-exec: EOF once the command runs (or failed)
    try:
        child = os.fork()
    except OSError as err:                      # e.g. the container's pids limit is reached
        status.send(status_fd, exec_error=f"fork: {(err.strerror or str(err)).lower()}")
        os._exit(EXEC_FAILED)
    if child == 0:
        os.close(exec_r)
        _child(spec, sys_, status_fd, console_fd, top_cap, filt, limits)
    os.close(exec_w)
    if console_fd >= 0:
        os.close(console_fd)
    status.send(status_fd, init_pid=child)
    if spec.get("detach"):
        os.read(exec_r, 1)
        done, wait_status = os.waitpid(child, os.WNOHANG)
        if done:                                # it failed before the exec: it said why
            os._exit(EXEC_FAILED)
        status.send(status_fd, started=child)
        os._exit(0)
    os.close(exec_r)
    forward_signals(child)
    _, wait_status = os.waitpid(child, 0)
    if os.WIFSIGNALED(wait_status):
        status.send(status_fd, signal=os.WTERMSIG(wait_status))
        os._exit(128 + os.WTERMSIG(wait_status))
    code = os.waitstatus_to_exitcode(wait_status)
    status.send(status_fd, exit=code)
    os._exit(code)


if __name__ == "__main__":
    main()
