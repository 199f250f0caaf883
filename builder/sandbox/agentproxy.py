"""``RUN --mount=type=ssh``: a socket in the RUN that reaches the user's ssh-agent.

Like BuildKit's forwarding, the RUN does not get the user's socket itself: the parent listens on a
socket of its own, owned and moded as the mount asks (default 0600 root), and relays every connection
to the agent.  The agent's keys never leave it; the RUN can only ask it to sign, as with ``ssh -A``.
The socket lives in ``directory`` (the caller's: the build gives an owned temp directory of the store,
which the store sweeps if the build is killed) or in a private temp directory removed afterwards; it
is bound through ``/proc/self/fd`` so a long directory path never meets the 108-byte socket limit.
"""

from __future__ import annotations

import os
import select
import shutil
import socket
import tempfile
import threading


class AgentProxy:
    def __init__(self, upstreams, *, mode: int = 0o600, uid: int = 0, gid: int = 0, directory: str | None = None):
        self.upstreams = tuple(upstreams)
        self.given_dir = directory
        self.mode, self.uid, self.gid = mode, uid, gid
        self.dir = ""
        self.path = ""
        self._listener: socket.socket | None = None
        self._stop_r, self._stop_w = -1, -1
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> "AgentProxy":
        self.dir = self.given_dir or tempfile.mkdtemp(prefix="pybuild-ssh-")
        try:
            self.path = os.path.join(self.dir, "agent.sock")
            self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            dir_fd = os.open(self.dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                self._listener.bind(f"/proc/self/fd/{dir_fd}/agent.sock")
                os.chown("agent.sock", self.uid, self.gid, dir_fd=dir_fd, follow_symlinks=False)
                os.chmod("agent.sock", self.mode & 0o777, dir_fd=dir_fd)
            finally:
                os.close(dir_fd)
            self._listener.listen(16)
            self._stop_r, self._stop_w = os.pipe()
            thread = threading.Thread(target=self._serve, name="pybuild-ssh-agent", daemon=True)
            thread.start()
            self._threads.append(thread)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _serve(self) -> None:
        listener = self._listener
        while True:
            ready = select.select([listener, self._stop_r], [], [])[0]
            if self._stop_r in ready:
                return
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            thread = threading.Thread(target=self._relay, args=(conn,), name="pybuild-ssh-relay", daemon=True)
            thread.start()
            self._threads.append(thread)

    def _connect(self) -> socket.socket | None:
        for path in self.upstreams:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.connect(path)
                return sock
            except OSError:
                sock.close()
        return None

    def _relay(self, conn: socket.socket) -> None:
        upstream = self._connect()
        if upstream is None:
            conn.close()
            return
        pairs = {conn: upstream, upstream: conn}
        try:
            while pairs:
                ready = select.select(list(pairs) + [self._stop_r], [], [])[0]
                if self._stop_r in ready:
                    return
                for sock in ready:
                    try:
                        data = sock.recv(65536)
                    except OSError:
                        data = b""
                    if not data:
                        return
                    pairs[sock].sendall(data)
        except OSError:
            return
        finally:
            conn.close()
            upstream.close()

    def __exit__(self, *exc) -> None:
        if self._stop_w >= 0:
            os.write(self._stop_w, b"x")
        for thread in self._threads:
            thread.join(2.0)
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        for fd in (self._stop_r, self._stop_w):
            if fd >= 0:
                os.close(fd)
        self._stop_r = self._stop_w = -1
        if self.dir and not self.given_dir:
            shutil.rmtree(self.dir, ignore_errors=True)
        elif self.path:
            try:
                os.unlink(self.path)
            except OSError:
                pass


__all__ = ["AgentProxy"]
