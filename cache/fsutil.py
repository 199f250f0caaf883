"""Durable file primitives: fsync a directory, write a file atomically, measure and remove trees.

A store write is durable only once the new file is fsynced, renamed into place and the directory
holding the new name is fsynced too; ``atomic_write`` does exactly that sequence.
"""

from __future__ import annotations

import functools
import os
import stat
from pathlib import Path


def temp_name(prefix: str) -> str:
    """A unique name for a temp entry; the pid is informational (ownership is an flock, see tempfiles)."""
    return f"{prefix}-{os.getpid()}-{os.urandom(8).hex()}"


def fsync_dir(path: Path | str) -> None:
    """Make the names in ``path`` (a rename or unlink just done) survive a power loss."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sync_filesystem(path: Path | str) -> None:
    """Flush everything written to the filesystem holding ``path`` (``syncfs``; ``sync`` as fallback).

    One call instead of an fsync per file: how a snapshot directory filled by someone else is made
    durable before it is published.
    """
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        syncfs = _syncfs()
        if syncfs is None or syncfs(fd) != 0:
            os.sync()
    finally:
        os.close(fd)


@functools.cache
def _syncfs():
    import ctypes  # only snapshot commits need it

    return getattr(ctypes.CDLL(None, use_errno=True), "syncfs", None)


def write_all(fd: int, data: bytes | bytearray | memoryview) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def atomic_write(path: Path, data: bytes, tmp_dir: Path, *, durable: bool = True, mode: int = 0o644) -> None:
    """Replace ``path`` with ``data`` so that readers see the old or the new file, never a mix.

    The temp file is created in ``tmp_dir`` (same filesystem as ``path``); on any error it is removed.
    """
    tmp = tmp_dir / temp_name("w")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        try:
            write_all(fd, data)
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, path)
    except BaseException:
        _unlink_quietly(tmp)
        raise
    if durable:
        fsync_dir(path.parent)


def _unlink_quietly(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def tree_size(path: Path | str) -> int:
    """Apparent bytes of the regular files under ``path`` (hard links counted once); 0 if absent."""
    total = 0
    seen: set[tuple[int, int]] = set()
    stack = [os.fspath(path)]
    try:
        st = os.lstat(stack[0])
    except FileNotFoundError:
        return 0
    if not stat.S_ISDIR(st.st_mode):
        return st.st_size if stat.S_ISREG(st.st_mode) else 0
    while stack:
        try:
            it = os.scandir(stack.pop())
        except OSError:
            continue
        with it:
            for entry in it:
                try:
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
                        continue
                    if not entry.is_file(follow_symlinks=False):
                        continue
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                if st.st_nlink > 1:
                    key = (st.st_dev, st.st_ino)
                    if key in seen:
                        continue
                    seen.add(key)
                total += st.st_size
    return total


def remove_tree(path: Path | str) -> None:
    """Remove a file or a whole tree, even one holding read-only directories (snapshots do)."""
    p = os.fspath(path)
    try:
        st = os.lstat(p)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(st.st_mode):
        _unlink_quietly(Path(p))
        return

    import shutil  # lazily: it drags in the compression modules

    try:
        shutil.rmtree(p)
    except FileNotFoundError:
        pass
    except PermissionError:
        # A non-root owner cannot empty a read-only directory: open everything up, then retry.
        os.chmod(p, 0o700)
        for top, dirs, _files in os.walk(p):
            for d in dirs:
                full = os.path.join(top, d)
                if not os.path.islink(full):
                    os.chmod(full, 0o700)
        shutil.rmtree(p)
