"""Disk usage of a store, for ``system df``: what is stored, and what a prune would give back."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from . import tempfiles
from .fsutil import tree_size
from .gc import make_plan

if TYPE_CHECKING:
    from .store import Store


@dataclass(frozen=True)
class DiskUsage:
    """Counts and bytes (apparent sizes; hard links inside a snapshot counted once)."""

    images: int
    tagged_images: int
    layers: int
    snapshots: int
    blobs: int
    blob_bytes: int
    layer_bytes: int  # layer directories: records and snapshots
    temp_bytes: int
    reclaimable_bytes: int  # what gc(prune_dangling=True) would free now

    @property
    def total_bytes(self) -> int:
        return self.blob_bytes + self.layer_bytes + self.temp_bytes


def disk_usage(store: "Store") -> DiskUsage:
    with store.locks.shared():
        plan = make_plan(store, prune_dangling=True)
        blob_sizes = {}
        for digest in store.blob_digests():
            try:
                blob_sizes[digest] = os.stat(store.layout.blob_path(digest)).st_size
            except FileNotFoundError:
                pass
        layer_sizes = {n: tree_size(store.layout.layers / n) for n in _layer_names(store)}
        snapshots = [n for n in layer_sizes if (store.layout.layers / n / "diff").is_dir()]
        _count, temp_bytes = tempfiles.sweep_stale(store.layout.tmp, dry_run=True)
        images = store.image_ids()
        tagged = set(store.tags().values())
    reclaimable = (sum(blob_sizes.get(d, 0) for d in plan.dead_blobs)
                   + sum(layer_sizes.get(n, 0) for n in plan.dead_layers) + temp_bytes)
    return DiskUsage(
        images=len(images), tagged_images=sum(1 for i in images if i in tagged),
        layers=len(store.layer_diff_ids()), snapshots=len(snapshots),
        blobs=len(blob_sizes), blob_bytes=sum(blob_sizes.values()),
        layer_bytes=sum(layer_sizes.values()), temp_bytes=temp_bytes, reclaimable_bytes=reclaimable)


def _layer_names(store: "Store") -> list[str]:
    try:
        return [n for n in os.listdir(store.layout.layers) if len(n) == 64]
    except FileNotFoundError:
        return []
