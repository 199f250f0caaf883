"""The parent's side of a tty run: the user's terminal relayed to the container's pty master.

``run(spec, on_console=relay.attach)`` hands over the master the sandbox opened (see ``console``);
``attach`` copies the user's window size to it (again on every SIGWINCH), puts the user's terminal
in raw mode (so ^C, ^Z and line editing reach the container's terminal, not ours) and starts a thread
moving bytes: the user's stdin to the master (``interactive``), the master to stdout until every copy
of the slave is closed (the container is gone).  Leaving the ``with`` block restores the terminal on
every exit path.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import select
import signal
import sys
import termios
import threading
import tty as ttymod


def copy_winsize(src: int, dst: int) -> None:
    try:
        size = fcntl.ioctl(src, termios.TIOCGWINSZ, b"\0" * 8)
        fcntl.ioctl(dst, termios.TIOCSWINSZ, size)
    except OSError:
        pass


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view):]
        except BlockingIOError:
            select.select([], [fd], [])


class TerminalRelay:
    """Relays ``in_fd``/``out_fd`` (the process's stdin/stdout by default) to a container's pty master."""

    def __init__(self, interactive: bool, in_fd: int | None = None, out_fd: int | None = None):
        self.interactive = interactive
        self.in_fd = sys.stdin.fileno() if in_fd is None else in_fd
        self.out_fd = sys.stdout.fileno() if out_fd is None else out_fd
        self.master = -1
        self.saved_attrs = None
        self.old_winch = None
        self.stop_r, self.stop_w = os.pipe()
        self.thread = threading.Thread(target=self._pump, name="pybuild-tty", daemon=True)

    def __enter__(self) -> "TerminalRelay":
        return self

    def attach(self, master: int) -> None:
        """Take the container's pty master and start relaying (``on_console`` of ``sandbox.run``)."""
        self.master = master
        if os.isatty(self.in_fd):
            copy_winsize(self.in_fd, self.master)
            if threading.current_thread() is threading.main_thread():
                self.old_winch = signal.signal(signal.SIGWINCH, lambda *_: copy_winsize(self.in_fd, self.master))
            self.saved_attrs = termios.tcgetattr(self.in_fd)
            ttymod.setraw(self.in_fd, termios.TCSANOW)
        self.thread.start()

    def _pump(self) -> None:
        readers = [self.master, self.stop_r] + ([self.in_fd] if self.interactive else [])
        while True:
            ready = select.select(readers, [], [])[0]
            if self.master in ready:
                try:
                    data = os.read(self.master, 65536)
                except OSError as err:          # EIO: every copy of the slave is closed
                    if err.errno != errno.EIO:
                        raise
                    data = b""
                if not data:
                    return
                write_all(self.out_fd, data)
                continue                        # drain the container's output before anything else
            if self.in_fd in ready:
                try:
                    data = os.read(self.in_fd, 65536)
                except OSError:
                    data = b""
                if data:
                    write_all(self.master, data)
                else:
                    readers.remove(self.in_fd)  # stdin at EOF: the container keeps its terminal
            if self.stop_r in ready:
                return

    def __exit__(self, *exc) -> None:
        try:
            if self.thread.is_alive():
                self.thread.join(5.0)           # the sandbox is gone: the master reads EIO once drained
            if self.thread.is_alive():
                os.write(self.stop_w, b"x")
                self.thread.join(1.0)
        finally:
            if self.saved_attrs is not None:
                with contextlib.suppress(termios.error):
                    termios.tcsetattr(self.in_fd, termios.TCSADRAIN, self.saved_attrs)
            if self.old_winch is not None:
                signal.signal(signal.SIGWINCH, self.old_winch)
            if not self.thread.is_alive():
                for fd in (self.master, self.stop_r, self.stop_w):
                    if fd >= 0:
                        os.close(fd)


__all__ = ["TerminalRelay", "copy_winsize", "write_all"]
