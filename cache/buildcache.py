"""The build-cache index: a step's cache key -> the layer it produced (or none, for an empty diff).

Keys are sha256 digests computed by the build engine from what a step depends on, so a hit means
the step need not run again. Entries are small JSON files written atomically; their layers are GC
roots (``roots()``), so a cached layer is never collected while its entry exists. ``prune`` drops
entries (by age, or down to a size budget) and a GC then reclaims what no longer has a root.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from .digests import digest_hex
from .errors import RecordError
from .fsutil import atomic_write


@dataclass(frozen=True)
class CacheEntry:
    key: str                 # sha256:... of the step
    diff_id: str | None      # the layer the step produced; None when its diff was empty
    created: float
    last_used: float
    size: int = 0            # uncompressed layer size, for --keep-storage

    def to_json(self) -> dict:
        return {"key": self.key, "diff_id": self.diff_id, "created": self.created, "last_used": self.last_used,
                "size": self.size}


class BuildCache:
    def __init__(self, root: Path, tmp: Path):
        self.dir = root / "buildcache"
        self.tmp = tmp
        self.dir.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        return self.dir / f"{digest_hex(key)}.json"

    def get(self, key: str) -> CacheEntry | None:
        path = self._path(key)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            obj = json.loads(data)
            entry = CacheEntry(obj["key"], obj["diff_id"], float(obj["created"]), float(obj["last_used"]),
                               int(obj.get("size", 0)))
        except (ValueError, KeyError, TypeError) as err:
            raise RecordError(f"build cache entry {path} is not readable: {err}", str(path)) from None
        return entry

    def put(self, key: str, diff_id: str | None, size: int = 0, *, created: float | None = None) -> CacheEntry:
        """Record a step's layer; ``created`` keeps the time of an entry made elsewhere (a remote
        cache), since a layer's history date is when it was made."""
        now = time.time()
        entry = CacheEntry(key, diff_id, now if created is None else created, now, size)
        atomic_write(self._path(key), json.dumps(entry.to_json()).encode(), self.tmp)
        return entry

    def touch(self, key: str) -> None:
        try:
            os.utime(self._path(key))
        except FileNotFoundError:
            pass

    def entries(self) -> list[CacheEntry]:
        out = []
        for path in sorted(self.dir.glob("*.json")):
            try:
                entry = self.get("sha256:" + path.stem)
            except RecordError:
                continue
            if entry is not None:
                out.append(CacheEntry(entry.key, entry.diff_id, entry.created, path.stat().st_mtime, entry.size))
        return out

    def roots(self) -> list[str]:
        """The layers that cache entries keep alive (for GC)."""
        return [e.diff_id for e in self.entries() if e.diff_id]

    def remove(self, key: str) -> bool:
        """Drop one entry (its layer goes at the next GC if nothing else keeps it)."""
        try:
            self._path(key).unlink()
            return True
        except FileNotFoundError:
            return False

    def prune(self, *, older_than: float | None = None, keep_bytes: int | None = None) -> list[CacheEntry]:
        """Drop entries last used before ``older_than`` (a time), then the oldest until ``keep_bytes``."""
        entries = sorted(self.entries(), key=lambda e: e.last_used)
        dropped = []
        if older_than is not None:
            for entry in [e for e in entries if e.last_used < older_than]:
                self._path(entry.key).unlink(missing_ok=True)
                dropped.append(entry)
            entries = [e for e in entries if e.last_used >= older_than]
        if keep_bytes is not None:
            total = sum(e.size for e in entries)
            for entry in entries:
                if total <= keep_bytes:
                    break
                self._path(entry.key).unlink(missing_ok=True)
                dropped.append(entry)
                total -= entry.size
        return dropped
