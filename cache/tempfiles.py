"""Temp entries under ``tmp/`` and the sweep that removes the ones a dead process left behind.

Ownership is an flock on the entry itself, held by its creator until the entry is renamed into place
or removed: when the creator dies the kernel drops the lock and the entry becomes stale. This is
exact where a pid check is not (pids are reused, and differ across pid namespaces).

Entries are created under the shared store lock and swept under the exclusive one, so the sweep can
never catch an entry between its creation and its flock.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from .fsutil import remove_tree, temp_name, tree_size
from .locks import try_lock


class OwnedEntry:
    """A temp file or directory in ``tmp/`` that this process holds (via an flock on ``fd``)."""

    def __init__(self, path: Path, fd: int):
        self.path = path
        self.fd = fd

    def release(self) -> None:
        """Close the descriptor, dropping ownership (after a rename, or after removing the entry)."""
        fd, self.fd = self.fd, -1
        if fd >= 0:
            os.close(fd)

    def discard(self) -> None:
        """Remove the entry, then drop ownership."""
        try:
            remove_tree(self.path)
        finally:
            self.release()


def create_file(tmp_dir: Path, prefix: str) -> OwnedEntry:
    """A new, empty, owned temp file opened for writing (``fd`` is the write descriptor)."""
    path = tmp_dir / temp_name(prefix)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # waits only for a dry-run scanner's momentary peek
    except BaseException:
        os.close(fd)
        os.unlink(path)
        raise
    return OwnedEntry(path, fd)


def create_dir(tmp_dir: Path, prefix: str, mode: int = 0o755) -> OwnedEntry:
    """A new, empty, owned temp directory (flock on a directory descriptor)."""
    path = tmp_dir / temp_name(prefix)
    os.mkdir(path, mode)
    os.chmod(path, mode)  # not subject to the umask: the mode becomes a snapshot root's mode
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except BaseException:
        os.rmdir(path)
        raise
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
    except BaseException:
        os.close(fd)
        os.rmdir(path)
        raise
    return OwnedEntry(path, fd)


def sweep_stale(tmp_dir: Path, *, dry_run: bool = False) -> tuple[int, int]:
    """Remove entries of ``tmp_dir`` that no live process owns; returns (count, bytes).

    Call only under the exclusive store lock.
    """
    count = size = 0
    try:
        names = os.listdir(tmp_dir)
    except FileNotFoundError:
        return 0, 0
    for name in names:
        path = tmp_dir / name
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK)
        except FileNotFoundError:
            continue
        except OSError:  # a symlink or something else we never create: not ours to keep
            fd = -1
        try:
            if fd >= 0 and not try_lock(fd):
                continue  # a live owner
            size += tree_size(path)
            count += 1
            if not dry_run:
                remove_tree(path)
        finally:
            if fd >= 0:
                os.close(fd)
    return count, size
