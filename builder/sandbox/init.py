"""The sandbox's own processes: ``python -c 'import builder.sandbox.init as i; i.main()' PLAN STATUS [CONSOLE [SECRETS]]``
(file descriptor numbers; CONSOLE is the unix socket a tty run sends its pty master over, SECRETS a
memory file with the RUN's secret values).

The parent starts this module with ``subprocess`` (a fresh single-threaded interpreter, so forking
below is safe even when the build engine runs threads) and three processes follow:

* the *monitor* (this process, outside the new pid namespace): dies with the parent (PDEATHSIG),
  unshares the mount, pid, ipc, uts (and, for ``--network none``, net) namespaces, forks the init and
  waits for it;
* the *init* (pid 1 of the new pid namespace): dies with the monitor, builds the rootfs and security
  profile (``container.prepare``), forks the command, forwards signals to it and reaps every zombie
  until the command exits, then reports its status.  When it exits the kernel kills whatever the RUN
  left running and the mount namespace -- with the overlay and every other mount -- goes away;
* the *command* (pid 2): sets its user and execs the RUN's argv (``container.exec_command``).
"""

from __future__ import annotations

import os
import select
import signal
import sys

from . import status
from .console import send_master
from .runmounts import unpack_secrets
from .container import exec_command, prepare
from .errors import SandboxError
from .signals import forward_signals
from .plan import SandboxPlan
from .syscalls import (CLONE_NEWCGROUP, CLONE_NEWIPC, CLONE_NEWNET, CLONE_NEWNS, CLONE_NEWPID, CLONE_NEWUTS,
                       PR_SET_PDEATHSIG, Syscalls)

SETUP_FAILED = 125
EXEC_FAILED = 127


def namespace_flags(network: str, netns: str = "") -> int:
    flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS
    return flags | CLONE_NEWNET if network == "none" and not netns else flags


def join_network(sys_: Syscalls, netns: str) -> None:
    """Enter the network namespace the runtime prepared (veth, address, routes already in place)."""
    fd = os.open(netns, os.O_RDONLY | os.O_CLOEXEC)
    try:
        sys_.setns(fd, CLONE_NEWNET)
    finally:
        os.close(fd)


def join_cgroups(sys_: Syscalls, procs_files) -> None:
    """Move this process (pid 1, before anything runs) into the container's cgroups, then give it a
    cgroup namespace rooted there.  Writing "0" means "the writer", whatever pid namespace it is in."""
    for path in procs_files:
        try:
            with open(path, "w") as fh:
                fh.write("0")
        except OSError as err:
            raise SandboxError(f"failed to join cgroup {os.path.dirname(path)}: {err.strerror}") from None


def _exit_status(wait_status: int) -> tuple[int, int | None]:
    """(exit code as a shell reports it, terminating signal or None)."""
    if os.WIFSIGNALED(wait_status):
        sig = os.WTERMSIG(wait_status)
        return 128 + sig, sig
    return os.waitstatus_to_exitcode(wait_status), None


def _error_text(err: BaseException) -> str:
    if isinstance(err, SandboxError):
        return err.message
    if isinstance(err, OSError):
        return f"sandbox setup failed: {err.strerror or err}"
    return f"sandbox setup failed: {type(err).__name__}: {err}"


def _command(prepared, sys_: Syscalls, status_fd: int) -> None:
    try:
        exec_command(prepared, sys_)
    except BaseException as err:  # noqa: BLE001 - whatever happens, report it and never return
        status.send(status_fd, error=_error_text(err))
    os._exit(EXEC_FAILED)


def _init(plan: SandboxPlan, sys_: Syscalls, fds: "ParentFds", life_fd: int) -> None:
    status_fd = fds.status
    try:
        sys_.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if select.select([life_fd], [], [], 0)[0]:   # readable = EOF = the monitor is already gone
            os._exit(SETUP_FAILED)
        os.close(life_fd)
        host = None
        if plan.spec.cgroup_procs:
            from .rootfs import read_host_view

            join_cgroups(sys_, plan.spec.cgroup_procs)
            host = read_host_view()         # our cgroup paths as the host names them, before the namespace
            sys_.unshare(CLONE_NEWCGROUP)
        prepared, console = prepare(plan, sys_, host, secret_values=unpack_secrets(fds.secrets))
        if console is not None:
            send_master(fds.console, console)
            os.close(console.master)
    except BaseException as err:  # noqa: BLE001
        status.send(status_fd, error=_error_text(err))
        os._exit(SETUP_FAILED)
    if fds.console >= 0:
        os.close(fds.console)
    if plan.spec.pid1_command:
        _command(prepared, sys_, status_fd)      # exec in place: the command is pid 1 (never returns)
    child = os.fork()
    if child == 0:
        _command(prepared, sys_, status_fd)
    if console is not None:
        os.close(console.slave)     # the command's copies alone keep it open: the master sees EOF after
    forward_signals(child)
    while True:
        try:
            pid, wait_status = os.waitpid(-1, 0)
        except ChildProcessError:
            os._exit(SETUP_FAILED)
        if pid == child:
            break
    code, sig = _exit_status(wait_status)
    if sig is None:
        status.send(status_fd, exit=code)
    else:
        status.send(status_fd, signal=sig)
    os._exit(code)


class ParentFds:
    """The descriptors the parent passed: ``PLAN STATUS [CONSOLE [SECRETS]]`` on the command line
    (-1: none)."""

    def __init__(self, argv: list[str]):
        numbers = [int(a) for a in argv[1:]] + [-1] * 4
        self.plan, self.status, self.console, self.secrets = numbers[:4]
        for fd in (self.status, self.console, self.secrets):
            if fd >= 0:
                os.set_inheritable(fd, False)


def main(argv: list[str] | None = None) -> None:
    fds = ParentFds(sys.argv if argv is None else argv)
    plan_fd, status_fd = fds.plan, fds.status
    sys_ = Syscalls()
    try:
        plan = SandboxPlan.load(plan_fd)
        sys_.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if plan.parent_pid and os.getppid() != plan.parent_pid:
            os._exit(SETUP_FAILED)          # the parent died before PDEATHSIG was armed
        if plan.spec.netns:
            join_network(sys_, plan.spec.netns)
        sys_.unshare(namespace_flags(plan.spec.network, plan.spec.netns))
    except BaseException as err:  # noqa: BLE001
        status.send(status_fd, error=_error_text(err))
        os._exit(SETUP_FAILED)
    life_r, life_w = os.pipe()
    init_pid = os.fork()
    if init_pid == 0:
        os.close(life_w)
        _init(plan, sys_, fds, life_r)
    os.close(life_r)
    for fd in (fds.console, fds.secrets):
        if fd >= 0:
            os.close(fd)
    status.send(status_fd, init_pid=init_pid)
    forward_signals(init_pid)
    while True:
        try:
            _, wait_status = os.waitpid(init_pid, 0)
            break
        except InterruptedError:
            continue
    code, sig = _exit_status(wait_status)
    if plan.spec.pid1_command:          # pid 1 was the command: its status is the command's
        status.send(status_fd, **({"exit": code} if sig is None else {"signal": sig}))
    elif sig is not None:
        status.send(status_fd, init_signal=sig)
    os._exit(code)


if __name__ == "__main__":
    main()
