"""The kernel side: network namespace files, ``ip -batch``, iptables-save/restore, sysctls.

Few processes on purpose (every build RUN pays for a namespace): a namespace is made in-process (a
thread unshares its network namespace and bind-mounts it on a file) and wired over netlink
(netlink.py); bridges (once per network) go through one ``ip -batch -``, rules through one
``iptables-restore --noflush``.
"""

from __future__ import annotations

import ctypes
import errno
import os
import socket
import subprocess
import threading

from .errors import NetworkError

CLONE_NEWNET = 0x40000000
MS_BIND = 4096
MNT_DETACH = 2

_libc = None


def _lib():
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    return _libc


def _in_thread(fn):
    """Runs ``fn`` in a short-lived thread (namespace changes stay in that thread) and returns its result."""
    box: dict = {}

    def body():
        try:
            box["value"] = fn()
        except BaseException as err:  # noqa: BLE001 - re-raised in the caller
            box["error"] = err

    thread = threading.Thread(target=body, name="pybuild-netns")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box.get("value")


def create_netns(path: str, *, netlink: bool = False):
    """A new, empty network namespace kept alive by a bind mount on ``path`` (like ``ip netns add``);
    with ``netlink``, returns a ``Netlink`` socket of that namespace (to configure it from here)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if os.path.exists(path):
        remove_netns(path)
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDONLY | os.O_CLOEXEC, 0o444)
    os.close(fd)

    def make():
        libc = _lib()
        if libc.unshare(CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise NetworkError(f"cannot create a network namespace: {os.strerror(err)}")
        if libc.mount(b"/proc/thread-self/ns/net", path.encode(), None, MS_BIND, None) != 0:
            err = ctypes.get_errno()
            raise NetworkError(f"cannot bind-mount a network namespace on {path}: {os.strerror(err)}")
        if netlink:
            from .netlink import Netlink

            return Netlink()
        return None

    try:
        return _in_thread(make)
    except BaseException:
        _unlink(path)
        raise


def remove_netns(path: str) -> None:
    """Unmounts and deletes a namespace file (idempotent); the namespace goes when nothing else holds it."""
    if not path:
        return
    while _lib().umount2(path.encode(), MNT_DETACH) == 0:
        pass                                    # stacked mounts: unmount them all
    _unlink(path)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def is_netns_mount(path: str) -> bool:
    try:
        return os.stat(path).st_dev != os.stat(os.path.dirname(path)).st_dev
    except OSError:
        return False


def ip_batch(lines: list[str], *, check: bool = True) -> str:
    """Runs ``ip -batch -``; a failure raises NetworkError with ip's message."""
    if not lines:
        return ""
    result = subprocess.run(["ip", "-batch", "-"], input="\n".join(lines) + "\n", capture_output=True, text=True)
    if check and result.returncode != 0:
        raise NetworkError(f"ip failed: {result.stderr.strip() or result.stdout.strip()}")
    return result.stdout


def link_exists(name: str) -> bool:
    try:
        socket.if_nametoindex(name)
        return True
    except OSError:
        return False


def set_sysctl(key: str, value: str) -> None:
    """Writes /proc/sys/<key> (of this process's network namespace) when it differs."""
    path = "/proc/sys/" + key.replace(".", "/")
    try:
        with open(path) as fh:
            if fh.read().strip() == value:
                return
        with open(path, "w") as fh:
            fh.write(value)
    except OSError as err:
        if err.errno != errno.ENOENT:
            raise NetworkError(f"cannot set {key}={value}: {err.strerror}") from None


def iptables_save() -> str:
    result = subprocess.run(["iptables-save"], capture_output=True, text=True)
    if result.returncode != 0:
        raise NetworkError(f"iptables-save failed: {result.stderr.strip()}")
    return result.stdout


def iptables_restore(tables: dict[str, list[str]]) -> None:
    """Applies rule lines per table (``-A/-I/-D ...``, ``:CHAIN - [0:0]``) without flushing anything else."""
    text = "".join(f"*{table}\n" + "".join(line + "\n" for line in lines) + "COMMIT\n"
                   for table, lines in tables.items() if lines)
    if not text:
        return
    result = subprocess.run(["iptables-restore", "--noflush", "-w", "5"], input=text, capture_output=True, text=True)
    if result.returncode != 0:
        raise NetworkError(f"iptables-restore failed: {result.stderr.strip()}")


__all__ = ["create_netns", "remove_netns", "ip_batch", "link_exists", "set_sysctl",
           "iptables_save", "iptables_restore", "is_netns_mount"]
