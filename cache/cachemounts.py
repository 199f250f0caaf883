"""Directories of ``RUN --mount=type=cache``: kept across builds, never part of a layer.

Layout under the state root (every name is a sha256 of the cache's key, so no id -- ``../../etc``,
an absolute path, anything -- can name a path outside ``cachemounts/``)::

    cachemounts/<sha256(key)>/key.json     the id (for listings and prune output)
    cachemounts/<sha256(key)>/lock         held briefly while instances are looked up or created
    cachemounts/<sha256(key)>/<n>/         instance n: the directory a RUN sees
    cachemounts/<sha256(key)>/<n>.lock     flock of instance n; its mtime is when it was last used

The key is the id, plus (as BuildKit's ``id:ref``) a digest of what seeds a new directory (``from``,
``source``, ``mode``/``uid``/``gid``) when there is such a base.

Sharing, as BuildKit's cache mounts: ``shared`` users hold an instance's lock shared and use it
together; ``private`` users hold it exclusively and get a new instance when every existing one is in
use; ``locked`` users hold it exclusively and wait until one is free.  flock: a user that dies
releases its instance.  ``prune`` removes only instances nobody holds.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from .fsutil import remove_tree, tree_size
from .locks import try_lock

SHARING = ("shared", "private", "locked")
_POLL = 0.1


def cache_key(cache_id: str, base: str = "") -> str:
    """The key of a cache: its id, plus the digest of its seed/ownership when it has one."""
    return f"{cache_id}:{base}" if base else cache_id


@dataclass(frozen=True)
class CacheMountInfo:
    """One instance directory of one cache mount."""

    cache_id: str
    name: str           # "<sha256 hex>/<n>", stable across listings
    size: int
    last_used: float
    in_use: bool


class CacheMounts:
    def __init__(self, root: Path, tmp: Path):
        self.dir = Path(root) / "cachemounts"
        self.tmp = Path(tmp)

    def _home(self, key: str) -> Path:
        return self.dir / hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()

    @contextmanager
    def _key_lock(self, home: Path) -> Iterator[None]:
        fd = os.open(home / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    @staticmethod
    def _instances(home: Path) -> list[int]:
        return sorted(int(n) for n in os.listdir(home) if n.isdigit())

    @contextmanager
    def acquire(self, key: str, sharing: str = "shared", *, display_id: str | None = None, mode: int = 0o755,
                uid: int = 0, gid: int = 0, seed: Callable[[str], None] | None = None,
                cancelled: Callable[[], bool] = lambda: False) -> Iterator[str]:
        """The path of an instance directory of cache ``key``, held for the ``with`` block.

        A new instance is created ``mode``/``uid``/``gid`` and filled by ``seed(path)`` (if given)
        before anyone sees it.  ``locked`` waits (polling ``cancelled``) for a free instance.
        """
        if sharing not in SHARING:
            raise ValueError(f"invalid cache sharing {sharing!r}")
        home = self._home(key)
        home.mkdir(parents=True, exist_ok=True)
        exclusive = sharing != "shared"
        held = None
        while held is None:
            with self._key_lock(home):
                self._record(home, display_id if display_id is not None else key)
                instances = self._instances(home)
                for n in instances:
                    fd = os.open(home / f"{n}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
                    if try_lock(fd, exclusive=exclusive):
                        held = (n, fd)
                        break
                    os.close(fd)
                if held is None and (sharing != "locked" or not instances):
                    held = self._create(home, (instances[-1] + 1) if instances else 0, exclusive, mode, uid, gid, seed)
            if held is None:
                if cancelled():
                    raise InterruptedError("waiting for a locked cache mount was cancelled")
                time.sleep(_POLL)
        n, fd = held
        try:
            yield str(home / str(n))
        finally:
            try:
                os.utime(home / f"{n}.lock")
            except OSError:
                pass
            os.close(fd)

    def _record(self, home: Path, display_id: str) -> None:
        path = home / "key.json"
        if not path.exists():
            tmp = home / f".key.json.{os.getpid()}"
            tmp.write_text(json.dumps({"id": display_id}))
            os.replace(tmp, path)

    def _create(self, home: Path, n: int, exclusive: bool, mode: int, uid: int, gid: int,
                seed: Callable[[str], None] | None) -> tuple[int, int]:
        """A new instance, complete before it appears under its name (a killed seed leaves a
        ``.new-<n>`` directory, removed by the next creation or prune)."""
        for name in os.listdir(home):
            if name.startswith(".new-"):
                remove_tree(home / name)
        staging = home / f".new-{n}"
        os.mkdir(staging, 0o700)
        try:
            if seed is not None:
                seed(str(staging))
            os.chown(staging, uid, gid)
            os.chmod(staging, mode & 0o7777)
            fd = os.open(home / f"{n}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            os.rename(staging, home / str(n))
        except BaseException:
            remove_tree(staging)
            raise
        return n, fd

    # -- listing and pruning ----------------------------------------------------------------------------

    def entries(self) -> list[CacheMountInfo]:
        out = []
        try:
            homes = sorted(os.listdir(self.dir))
        except FileNotFoundError:
            return []
        for hex_ in homes:
            home = self.dir / hex_
            try:
                cache_id = json.loads((home / "key.json").read_text()).get("id", "")
                instances = self._instances(home)
            except (OSError, ValueError):
                continue
            for n in instances:
                lock = home / f"{n}.lock"
                in_use = False
                try:
                    fd = os.open(lock, os.O_RDWR | os.O_CLOEXEC)
                    try:
                        in_use = not try_lock(fd, exclusive=True)
                    finally:
                        os.close(fd)
                    last_used = os.stat(lock).st_mtime
                except OSError:
                    last_used = 0.0
                out.append(CacheMountInfo(cache_id, f"{hex_}/{n}", tree_size(home / str(n)), last_used, in_use))
        return out

    def prune(self, *, older_than: float | None = None, keep_bytes: int | None = None,
              dry_run: bool = False) -> list[CacheMountInfo]:
        """Remove instances nobody holds: used before ``older_than`` (a time), then the least
        recently used until the rest fits in ``keep_bytes``; without either, all of them."""
        entries = sorted((e for e in self.entries() if not e.in_use), key=lambda e: e.last_used)
        chosen = []
        if older_than is None and keep_bytes is None:
            chosen = entries
        else:
            rest = entries
            if older_than is not None:
                chosen = [e for e in entries if e.last_used < older_than]
                rest = [e for e in entries if e.last_used >= older_than]
            if keep_bytes is not None:
                total = sum(e.size for e in rest) + sum(e.size for e in self.entries() if e.in_use)
                for e in rest:
                    if total <= keep_bytes:
                        break
                    chosen.append(e)
                    total -= e.size
        removed = []
        for e in chosen:
            if dry_run or self._remove(e):
                removed.append(e)
        return removed

    def prune_one(self, entry: CacheMountInfo) -> bool:
        """Remove one instance unless someone holds it now."""
        return self._remove(entry)

    def _remove(self, entry: CacheMountInfo) -> bool:
        hex_, n = entry.name.split("/")
        home = self.dir / hex_
        with self._key_lock(home):
            lock = home / f"{n}.lock"
            try:
                fd = os.open(lock, os.O_RDWR | os.O_CLOEXEC)
            except FileNotFoundError:
                return False
            try:
                if not try_lock(fd, exclusive=True):
                    return False                       # taken since we looked
                self.tmp.mkdir(parents=True, exist_ok=True)
                doomed = self.tmp / f"cachemount-{hex_[:16]}-{n}-{os.getpid()}"
                os.rename(home / n, doomed)
                os.unlink(lock)
            finally:
                os.close(fd)
        remove_tree(doomed)
        return True

    def size(self) -> int:
        return sum(e.size for e in self.entries())


__all__ = ["CacheMounts", "CacheMountInfo", "cache_key", "SHARING"]
