"""The client side of attach: the user's terminal or stdio relayed over the monitor's attach socket.

With a tty the user's terminal goes raw (^C reaches the container), its size follows SIGWINCH, and
ctrl-p ctrl-q detaches (the container keeps running).  Without a tty, stdout and stderr frames go to
our stdout and stderr, and our stdin (with -i) is sent until EOF, then the container's stdin is closed.
Returns the container's exit code, or None when detached / the container is still running.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import select
import signal
import socket
import struct
import sys
import termios
import tty as ttymod

from ..sandbox.terminal import write_all
from .attach import CLOSE_STDIN, EXIT, RESIZE, STDERR, STDIN, STDOUT, recv_frame, send_frame

DETACH = b"\x10\x11"     # ctrl-p ctrl-q


def _winsize(fd: int) -> tuple[int, int] | None:
    try:
        rows, cols, _, _ = struct.unpack("HHHH", fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8))
        return rows, cols
    except OSError:
        return None


def terminal_size() -> tuple[int, int] | None:
    return _winsize(sys.stdin.fileno()) if os.isatty(sys.stdin.fileno()) else None


def relay(sock: socket.socket, *, tty: bool, stdin: bool, in_fd: int | None = None, out_fd: int | None = None,
          err_fd: int | None = None) -> int | None:
    in_fd = sys.stdin.fileno() if in_fd is None else in_fd
    out_fd = sys.stdout.fileno() if out_fd is None else out_fd
    err_fd = sys.stderr.fileno() if err_fd is None else err_fd
    saved = None
    old_winch = None
    is_tty = os.isatty(in_fd)
    try:
        if tty and is_tty:
            size = _winsize(in_fd)
            if size:
                send_frame(sock, RESIZE, f"{size[0]} {size[1]}".encode())

            def on_winch(*_):
                size = _winsize(in_fd)
                if size:
                    with contextlib.suppress(OSError):
                        send_frame(sock, RESIZE, f"{size[0]} {size[1]}".encode())

            old_winch = signal.signal(signal.SIGWINCH, on_winch)
            if stdin:
                saved = termios.tcgetattr(in_fd)
                ttymod.setraw(in_fd, termios.TCSANOW)
        return _pump(sock, tty=tty, stdin=stdin, in_fd=in_fd, out_fd=out_fd, err_fd=err_fd)
    finally:
        if saved is not None:
            with contextlib.suppress(termios.error):
                termios.tcsetattr(in_fd, termios.TCSADRAIN, saved)
        if old_winch is not None:
            signal.signal(signal.SIGWINCH, old_winch)


def _pump(sock, *, tty, stdin, in_fd, out_fd, err_fd) -> int | None:
    readers = [sock] + ([in_fd] if stdin else [])
    pending_ctrl_p = False
    while True:
        try:
            ready = select.select(readers, [], [])[0]
        except InterruptedError:
            continue
        if sock in ready:
            frame = recv_frame(sock)
            if frame is None:
                return None
            kind, payload = frame
            if kind == STDOUT:
                write_all(out_fd, payload)
            elif kind == STDERR:
                write_all(err_fd, payload)
            elif kind == EXIT:
                return int(payload or b"0")
            continue
        if in_fd in ready:
            try:
                data = os.read(in_fd, 65536)
            except OSError:
                data = b""
            if not data:
                readers.remove(in_fd)
                if not tty:
                    send_frame(sock, CLOSE_STDIN)
                continue
            if tty:
                if pending_ctrl_p:
                    data = b"\x10" + data
                    pending_ctrl_p = False
                if DETACH in data:
                    before = data[:data.index(DETACH)]
                    if before:
                        send_frame(sock, STDIN, before)
                    os.write(out_fd, b"\r\n")
                    return None
                if data.endswith(b"\x10"):
                    pending_ctrl_p = True
                    data = data[:-1]
            if data:
                send_frame(sock, STDIN, data)


__all__ = ["relay", "terminal_size", "DETACH"]
