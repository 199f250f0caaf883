"""The attach channel between a container's monitor and ``pybuild attach`` / ``run`` / ``start -a``.

A unix socket ``attach.sock`` in the container's directory, served by the monitor.  Both directions
carry frames: one type byte, a 4-byte big-endian length, the payload.  The client opens with HELLO
(JSON: does it send stdin), then sends STDIN data, RESIZE ("rows cols") and CLOSE_STDIN; the monitor
sends STDOUT/STDERR data (a tty container's output is all STDOUT) and EXIT (the exit code) when the
container ends.  Detaching (ctrl-p ctrl-q) is the client closing its socket: the container runs on.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import threading
from typing import Callable

STDIN, STDOUT, STDERR, RESIZE, EXIT, CLOSE_STDIN, HELLO = range(7)
STREAMS = {"stdout": STDOUT, "stderr": STDERR}
_HEADER = struct.Struct(">BI")


class _ShortPath:
    """A unix socket path may hold 107 bytes: reach a long one through /proc/self/fd/N of its directory."""

    def __init__(self, path: str):
        self.fd = os.open(os.path.dirname(path) or ".", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        self.path = f"/proc/self/fd/{self.fd}/{os.path.basename(path)}"

    def __enter__(self) -> str:
        return self.path

    def __exit__(self, *exc) -> None:
        os.close(self.fd)


def send_frame(sock: socket.socket, kind: int, payload: bytes = b"") -> None:
    sock.sendall(_HEADER.pack(kind, len(payload)) + payload)


def _recv_exact(sock: socket.socket, size: int) -> bytes | None:
    buf = bytearray()
    while len(buf) < size:
        chunk = sock.recv(size - len(buf))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


def recv_frame(sock: socket.socket) -> tuple[int, bytes] | None:
    header = _recv_exact(sock, _HEADER.size)
    if header is None:
        return None
    kind, size = _HEADER.unpack(header)
    payload = _recv_exact(sock, size) if size else b""
    return None if payload is None else (kind, payload)


class AttachServer:
    """The monitor's side: accepts clients, fans the container's output out to them, and passes their
    input to ``on_input(bytes)`` / ``on_resize(rows, cols)`` / ``on_close_stdin()``."""

    def __init__(self, path: str, on_input: Callable[[bytes], None], on_resize: Callable[[int, int], None],
                 on_close_stdin: Callable[[], None]):
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        with _ShortPath(path) as short:
            self.sock.bind(short)
        os.chmod(path, 0o600)
        self.sock.listen(8)
        self.clients: list[socket.socket] = []
        self.lock = threading.Lock()
        self.first_client = threading.Event()
        self.on_input, self.on_resize, self.on_close_stdin = on_input, on_resize, on_close_stdin
        threading.Thread(target=self._accept, daemon=True, name="attach-accept").start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True, name="attach-client").start()

    def _serve(self, client: socket.socket) -> None:
        hello = recv_frame(client)
        if hello is None or hello[0] != HELLO:
            client.close()
            return
        with self.lock:
            self.clients.append(client)
        self.first_client.set()
        wants_stdin = bool(json.loads(hello[1] or b"{}").get("stdin"))
        try:
            while True:
                frame = recv_frame(client)
                if frame is None:
                    break
                kind, payload = frame
                if kind == STDIN and wants_stdin:
                    self.on_input(payload)
                elif kind == RESIZE:
                    rows, cols = (int(x) for x in payload.split())
                    self.on_resize(rows, cols)
                elif kind == CLOSE_STDIN and wants_stdin:
                    self.on_close_stdin()
        except (OSError, ValueError):
            pass
        finally:
            self._drop(client)

    def _drop(self, client: socket.socket) -> None:
        with self.lock:
            if client in self.clients:
                self.clients.remove(client)
        client.close()

    def broadcast(self, kind: int, data: bytes) -> None:
        with self.lock:
            clients = list(self.clients)
        for client in clients:
            try:
                send_frame(client, kind, data)
            except OSError:
                self._drop(client)

    def close(self, exit_code: int | None = None) -> None:
        if exit_code is not None:
            self.broadcast(EXIT, str(exit_code).encode())
        with self.lock:
            clients, self.clients = list(self.clients), []
        for client in clients:
            try:
                client.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            client.close()
        self.sock.close()


def connect(path: str, *, stdin: bool) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with _ShortPath(path) as short:
        sock.connect(short)
    send_frame(sock, HELLO, json.dumps({"stdin": stdin}).encode())
    return sock


__all__ = ["AttachServer", "connect", "send_frame", "recv_frame", "STDIN", "STDOUT", "STDERR", "RESIZE", "EXIT",
           "CLOSE_STDIN", "HELLO", "STREAMS"]
