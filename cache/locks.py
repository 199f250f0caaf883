"""Inter-process locks on lock files with ``flock(2)``.

flock is used because the kernel drops the lock when its holder dies, so a SIGKILLed writer never
leaves the store locked. Each acquisition opens its own file description, so two threads of one
process exclude each other exactly like two processes do.

The locks of a store (``StoreLocks``):

- ``locks/store.lock`` -- shared by every writer while it creates a temp entry or publishes a
  write (rename, record, tag, lease entry); exclusive for garbage collection and for the temp
  sweep on open. So GC never runs between a writer's check and its publication.
- ``locks/tags.lock`` -- exclusive around the read-modify-write of ``tags.json``; taken inside the
  shared store lock.
- ``locks/keys/layer-<hex>.lock`` -- exclusive around a change of one layer's record or snapshot;
  taken inside the shared store lock, so read-modify-writes of a record never lose an update.
- ``locks/keys/blob-<hex>.lock`` -- held for the whole write of a blob whose digest is known in
  advance, outside the store lock (a write may take minutes and must not hold GC off), so that
  concurrent producers of the same blob do the work once. Only an optimisation: GC removes unused
  key lock files, and the worst a lost one causes is the work done twice, with the same result.

No code path takes the store lock while holding a layer key or the tags lock, so there is no cycle.
flock grants no fairness: a waiter polls (with a timeout) and gets in when the lock is free.
"""

from __future__ import annotations

import errno
import fcntl
import os
import time
from pathlib import Path

from .errors import LockTimeout
from .paths import Layout

_DEFAULT = object()


def try_lock(fd: int, *, exclusive: bool = True) -> bool:
    """Take an flock without waiting; False if someone else holds a conflicting one."""
    try:
        fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
        return True
    except OSError as e:
        if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return False
        raise


def holder_pids(path: Path | str) -> tuple[int, ...]:
    """Pids holding an flock on ``path`` according to ``/proc/locks`` (empty if unknown)."""
    try:
        st = os.stat(path)
        with open("/proc/locks", encoding="ascii", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return ()
    want = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    pids = []
    for line in lines:
        parts = line.split()
        if len(parts) < 6 or parts[1] == "->" or parts[1] != "FLOCK":
            continue
        if parts[5] == want and parts[4].isdigit() and int(parts[4]) > 0:
            pids.append(int(parts[4]))
    return tuple(dict.fromkeys(pids))


class FileLock:
    """One flock (shared or exclusive) on one lock file; a context manager.

    ``timeout=None`` waits forever, ``0`` does not wait; otherwise ``LockTimeout`` names the lock and the
    holder pid when it can be found.
    """

    def __init__(self, path: Path, name: str, *, shared: bool = False, timeout: float | None = None):
        self.path = Path(path)
        self.name = name
        self.shared = shared
        self.timeout = timeout
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> "FileLock":
        if self._fd is not None:
            raise RuntimeError(f"{self.name} already held by this object")
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            self._wait(fd)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return self

    def try_acquire(self) -> bool:
        """Acquire without waiting; False (and nothing held) if someone else holds the lock."""
        if self._fd is not None:
            raise RuntimeError(f"{self.name} already held by this object")
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        if try_lock(fd, exclusive=not self.shared):
            self._fd = fd
            return True
        os.close(fd)
        return False

    def _wait(self, fd: int) -> None:
        exclusive = not self.shared
        if self.timeout is None:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            return
        deadline = time.monotonic() + self.timeout
        delay = 0.001
        while not try_lock(fd, exclusive=exclusive):
            left = deadline - time.monotonic()
            if left <= 0:
                pids = [p for p in holder_pids(self.path) if p != os.getpid()] or list(holder_pids(self.path))
                raise LockTimeout(self.name, self.path, self.timeout, pids[0] if pids else None)
            time.sleep(min(delay, left))
            delay = min(delay * 2, 0.01)

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # closing the only descriptor drops the flock

    def __enter__(self) -> "FileLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


class StoreLocks:
    """The named locks of one store (see the module docstring for what each protects)."""

    def __init__(self, layout: Layout, timeout: float | None = 120.0):
        self.layout = layout
        self.timeout = timeout
        self.store_path = layout.locks / "store.lock"
        self.tags_path = layout.locks / "tags.lock"

    def shared(self) -> FileLock:
        return FileLock(self.store_path, "store lock (shared)", shared=True, timeout=self.timeout)

    def exclusive(self, timeout: float | None | object = _DEFAULT) -> FileLock:
        t = self.timeout if timeout is _DEFAULT else timeout
        return FileLock(self.store_path, "store lock (exclusive)", timeout=t)  # type: ignore[arg-type]

    def tags(self) -> FileLock:
        return FileLock(self.tags_path, "tags lock", timeout=self.timeout)

    def key(self, kind: str, hex_: str) -> FileLock:
        return FileLock(self.layout.key_locks / f"{kind}-{hex_}.lock", f"{kind} lock {hex_[:12]}",
                        timeout=self.timeout)

    def sweep_key_locks(self) -> int:
        """Remove key lock files nobody holds; call only under the exclusive store lock."""
        removed = 0
        try:
            names = os.listdir(self.layout.key_locks)
        except FileNotFoundError:
            return 0
        for name in names:
            path = self.layout.key_locks / name
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
            except OSError:
                continue
            try:
                if try_lock(fd):
                    os.unlink(path)
                    removed += 1
            except FileNotFoundError:
                pass
            finally:
                os.close(fd)
        return removed
