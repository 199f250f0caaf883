"""The container's terminal, made the way runc's ``--console-socket`` does it.

A pty pair from the host's /dev/ptmx would give the command a slave from the host's devpts: inside,
``tty`` finds no /dev/pts/N of that name and prints "not a tty".  So the sandbox's pid 1 opens the
pty itself, from the container's own devpts (mounted ``newinstance,ptmxmode=0666``), after
pivot_root: the slave is then /dev/pts/0 in the container.  The master goes back to the parent over
a unix socket (SCM_RIGHTS); the parent answers with one byte once it has set the window size and
started relaying, and only then is the command started, so it never sees a 0x0 terminal.

Parent side: ``receive_master``; sandbox side: ``open_console``, ``send_master``, ``attach``.
"""

from __future__ import annotations

import fcntl
import os
import socket
import stat
import struct
from dataclasses import dataclass

# <asm-generic/ioctls.h>: not all of them are in Python's termios module.
TIOCGPTN = 0x80045430
TIOCSPTLCK = 0x40045431
TIOCSCTTY = 0x540E
_READY = b"R"


@dataclass(frozen=True, slots=True)
class Console:
    """The pty the sandbox opened: ``master`` (to send), ``slave`` (for the command), its path."""

    master: int
    slave: int
    path: str


def open_console(dev: str = "/dev") -> Console:
    """Open a pty from the devpts instance under ``dev`` (run after pivot_root, so the container's)."""
    master = os.open(os.path.join(dev, "ptmx"), os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        fcntl.ioctl(master, TIOCSPTLCK, struct.pack("i", 0))          # unlockpt
        number = struct.unpack("I", fcntl.ioctl(master, TIOCGPTN, b"\0" * 4))[0]
        path = f"/dev/pts/{number}"
        slave = os.open(os.path.join(dev, "pts", str(number)), os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    except BaseException:
        os.close(master)
        raise
    return Console(master, slave, path)


def mount_console(sys, console: Console, dev: str = "/dev") -> None:
    """runc's /dev/console: the slave bind-mounted there (the node is created on the /dev tmpfs)."""
    from .syscalls import MS_BIND

    target = os.path.join(dev, "console")
    if not os.path.lexists(target):
        os.close(os.open(target, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o600))
    sys.mount(os.path.join(dev, "pts", console.path.rsplit("/", 1)[1]), target, None, MS_BIND)


def send_master(sock_fd: int, console: Console) -> None:
    """Hand the master to the parent and wait until it is ready for output (EOF: it is gone)."""
    with socket.socket(fileno=os.dup(sock_fd)) as sock:
        socket.send_fds(sock, [b"M"], [console.master])
        if sock.recv(1) != _READY:
            raise OSError("the parent closed the console socket before taking the terminal")


def attach(slave: int) -> None:
    """In the command process: a new session with the slave as controlling terminal and stdio."""
    os.setsid()
    fcntl.ioctl(slave, TIOCSCTTY, 0)
    for fd in (0, 1, 2):
        os.dup2(slave, fd)
    if slave > 2:
        os.close(slave)


def give_stdio_to(uid: int) -> None:
    """runc's fixStdioPermissions: stdio that is a pipe or our pty changes owner (uid only) so a
    non-root USER can reopen /dev/stdout; /dev/null and files inherited from the user are left alone."""
    for fd in (0, 1, 2):
        try:
            st = os.fstat(fd)
        except OSError:
            continue
        if st.st_uid == uid:
            continue
        if stat.S_ISFIFO(st.st_mode) or (stat.S_ISCHR(st.st_mode) and os.major(st.st_rdev) in range(136, 144)):
            try:
                os.fchown(fd, uid, st.st_gid)
            except OSError:
                pass


def receive_master(sock: socket.socket) -> int | None:
    """Parent side: the master fd the sandbox sent, or ``None`` if it closed the socket first."""
    try:
        _, fds, _, _ = socket.recv_fds(sock, 16, 1)
    except OSError:
        return None
    return fds[0] if fds else None


def ready(sock: socket.socket) -> None:
    """Parent side: let the command start (the terminal is set up and being relayed)."""
    try:
        sock.sendall(_READY)
    except OSError:
        pass


__all__ = ["Console", "open_console", "mount_console", "send_master", "attach", "give_stdio_to",
           "receive_master", "ready"]
