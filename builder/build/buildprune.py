"""``pybuild builder prune``: drop build-cache entries and cache-mount directories, then collect.

BuildKit's rules: without ``all``, cache whose layers an image in the store still uses ("shared")
stays; ``until`` keeps what was used more recently than the given age; ``keep_bytes`` removes the least
recently used records (build-cache entries and cache-mount directories together) until the rest fits.
Cache mounts in use by a running build are never removed.  The reclaimed space is what the disk gets
back: the layers the GC could delete afterwards plus the cache-mount directories.
"""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass(frozen=True)
class PruneReport:
    deleted: tuple[str, ...]      # record ids, as docker prints them
    reclaimed: int                # bytes


def _image_layers(store) -> set[str]:
    used: set[str] = set()
    for record in store.images():
        used.update(record.layers)
    return used


def prune_build_cache(store, *, all_records: bool = False, until: float | None = None,
                      keep_bytes: int | None = None) -> PruneReport:
    now = time.time()
    shared = set() if all_records else _image_layers(store)
    records = []        # (last_used, size, id, remove, is_mount)
    for entry in store.build_cache.entries():
        if entry.diff_id in shared:
            continue
        records.append((entry.last_used, entry.size, entry.key.split(":", 1)[1],
                        lambda e=entry: store.build_cache.remove(e.key), False))
    mounts = store.cache_mounts
    for info in mounts.entries():
        if info.in_use:
            continue
        records.append((info.last_used, info.size, info.name.replace("/", ":"),
                        lambda i=info: mounts.prune_one(i), True))
    records.sort(key=lambda r: r[0])
    if until is not None:
        records = [r for r in records if r[0] < now - until]
    if keep_bytes is not None:
        total = sum(e.size for e in store.build_cache.entries()) + mounts.size()
        chosen = []
        for record in records:
            if total <= keep_bytes:
                break
            chosen.append(record)
            total -= record[1]
        records = chosen
    deleted = []
    mount_bytes = 0
    for _, size, ident, remove, is_mount in records:
        if remove():
            deleted.append(ident)
            if is_mount:
                mount_bytes += size
    freed = store.gc().bytes_freed if deleted else 0
    return PruneReport(tuple(deleted), freed + mount_bytes)


_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """Go's ``time.ParseDuration`` (``24h``, ``1h30m``, ``90s``, ``0.5h``) in seconds."""
    import re

    if text in ("0",):
        return 0.0
    parts = re.findall(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(text)
    return sum(float(n) * _UNITS[u] for n, u in parts)


__all__ = ["PruneReport", "prune_build_cache", "parse_duration"]
