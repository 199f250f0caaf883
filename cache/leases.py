"""Leases: what a running operation uses, so that GC keeps it.

A lease is a file ``leases/<id>.lease`` of JSON lines (a header with the pid and name, then the refs
added as the operation goes), held under an flock by its owner for as long as it lives. A ref is a
digest: it keeps the blob, the layer and the image of that name and everything they reach. When the
owner dies the kernel drops the flock, and the lease is stale: GC ignores and removes it.

Creating a lease and adding to it happen under the shared store lock, so a ref added before its
content is checked is seen by any later GC; the rule for users is "lease first, then look".
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from .digests import digest_hex
from .errors import RecordError, StoreError
from .fsutil import write_all
from .locks import try_lock


@dataclass(frozen=True)
class LeaseInfo:
    """A lease as read from its file."""

    id: str
    name: str
    pid: int
    created: float
    refs: frozenset[str]


class Lease:
    """A lease held by this process; a context manager that releases it on exit."""

    def __init__(self, path: Path, fd: int, info: LeaseInfo, guard: Callable[[], AbstractContextManager]):
        self.path = path
        self._fd = fd
        self.id = info.id
        self.name = info.name
        self.created = info.created
        self._refs = set(info.refs)
        self._guard = guard
        self._lock = threading.Lock()

    @property
    def refs(self) -> frozenset[str]:
        return frozenset(self._refs)

    @property
    def active(self) -> bool:
        return self._fd >= 0

    def add(self, *refs: str) -> None:
        """Protect ``refs`` from GC from now on (check that the content exists afterwards)."""
        if not self.active:
            raise StoreError(f"lease {self.id} ({self.name}) was released", self.id)
        with self._guard():
            self.add_locked(refs)

    def add_locked(self, refs: Iterable[str]) -> None:
        """``add`` for a caller that already holds the shared store lock (a released lease ignores it)."""
        with self._lock:
            new = [r for r in dict.fromkeys(refs) if r not in self._refs]
            if not new or self._fd < 0:
                return
            for r in new:
                digest_hex(r)
            write_all(self._fd, (json.dumps({"refs": new}) + "\n").encode())
            self._refs.update(new)

    def release(self) -> None:
        """Delete the lease file; its refs are no longer roots."""
        with self._lock:
            fd, self._fd = self._fd, -1
        if fd >= 0:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
            os.close(fd)

    def __enter__(self) -> "Lease":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def create(leases_dir: Path, name: str, refs: Iterable[str], guard: Callable[[], AbstractContextManager]) -> Lease:
    """Create and hold a new lease (under the shared store lock, taken through ``guard``)."""
    refs = list(dict.fromkeys(refs))
    for r in refs:
        digest_hex(r)
    lease_id = os.urandom(8).hex()
    info = LeaseInfo(lease_id, name, os.getpid(), time.time(), frozenset(refs))
    path = leases_dir / f"{lease_id}.lease"
    header = {"id": lease_id, "name": name, "pid": info.pid, "created": info.created}
    with guard():
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # waits only for a scanner's momentary peek
            lines = [json.dumps(header)] + ([json.dumps({"refs": refs})] if refs else [])
            write_all(fd, ("\n".join(lines) + "\n").encode())
        except BaseException:
            os.close(fd)
            os.unlink(path)
            raise
    return Lease(path, fd, info, guard)


def _read(path: Path) -> LeaseInfo:
    with open(path, "rb") as f:
        lines = f.read().splitlines()
    try:
        header = json.loads(lines[0])
        refs: set[str] = set()
        for line in lines[1:]:
            refs.update(json.loads(line)["refs"])
        return LeaseInfo(str(header["id"]), str(header["name"]), int(header["pid"]), float(header["created"]),
                         frozenset(refs))
    except (IndexError, ValueError, KeyError, TypeError) as e:
        raise RecordError(path, f"unreadable lease: {e}") from None


def scan(leases_dir: Path, *, remove_stale: bool = False) -> tuple[list[LeaseInfo], int]:
    """Live leases, and the number of stale ones (removed if asked: only under the exclusive store lock)."""
    live: list[LeaseInfo] = []
    stale = 0
    try:
        names = sorted(os.listdir(leases_dir))
    except FileNotFoundError:
        return [], 0
    for name in names:
        if not name.endswith(".lease"):
            continue
        path = leases_dir / name
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            continue
        try:
            if not try_lock(fd, exclusive=False):
                live.append(_read(path))
                continue
            stale += 1
            if remove_stale:
                os.unlink(path)
        finally:
            os.close(fd)
    return live, stale
