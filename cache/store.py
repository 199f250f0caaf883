"""``Store``: the one object the rest of pybuild uses to reach the local content store.

It wires the parts together (blobs, layers, images, tags, leases, GC) and adds what needs all of them:
writes made while a lease of this store is held are added to that lease as they are published.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from . import leases as leases_mod
from . import pins
from . import tempfiles
from .buildcache import BuildCache
from .blobs import BlobReader, BlobSource, BlobStore, BlobWriter, Expected
from .digests import BlobInfo
from .errors import RecordError, StoreError
from .images import ImageStore
from .layers import LayerStore
from .leases import Lease, LeaseInfo
from .locks import StoreLocks
from .paths import Layout, default_root
from .records import ImageRecord, LayerRecord, RecordCache
from .tags import TagStore
from .usage import DiskUsage, disk_usage


class Store:
    """The content store under ``root`` (created if missing); stale temp entries are swept on open.

    ``lock_timeout`` bounds every wait for a lock (``None``: wait forever).
    """

    def __init__(self, root: Path | str, *, lock_timeout: float | None = 120.0, sweep: bool = True):
        self.root = Path(os.path.abspath(root))
        self.layout = Layout(self.root)
        self.layout.ensure()
        self.locks = StoreLocks(self.layout, lock_timeout)
        self._records = RecordCache()
        self._active: list[Lease] = []
        self._active_lock = threading.Lock()
        self._blobs = BlobStore(self.layout, self.locks, self._retain)
        self._layers = LayerStore(self.layout, self.locks, self._blobs, self._records, self._retain)
        self._images = ImageStore(self.layout, self.locks, self._blobs, self._layers, self._records, self._retain)
        self._tags = TagStore(self.layout, self.locks, self._records, self._images.require)
        self.build_cache = BuildCache(self.root, self.layout.tmp)
        self._cache_mounts = None
        if sweep:
            self.sweep_temp()

    @classmethod
    def open(cls, root: Path | str | None = None, **options: Any) -> "Store":
        """The store at ``root``, or at ``default_root()`` (``PYBUILD_ROOT``, /var/lib/pybuild, XDG)."""
        return cls(default_root() if root is None else root, **options)

    def __repr__(self) -> str:
        return f"Store({str(self.root)!r})"

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Discard uncommitted snapshot directories and release this store's leases."""
        self._layers.close()
        with self._active_lock:
            leases, self._active = self._active, []
        for lease in leases:
            lease.release()

    # -- blobs -----------------------------------------------------------------------------------

    def put_blob(self, source: BlobSource, expected: Expected = None) -> BlobInfo:
        """Store bytes, a binary file or an iterable of chunks; ``expected`` is a digest or a BlobInfo."""
        return self._blobs.put(source, expected)

    def blob_writer(self, expected: Expected = None) -> BlobWriter:
        """A context manager to stream a blob: ``.write()``, then ``.commit() -> BlobInfo``."""
        return self._blobs.writer(expected)

    def open_blob(self, digest: str) -> BlobReader:
        """A reader that raises ``CorruptBlob`` when its last byte is read if the content is wrong."""
        return self._blobs.open(digest)

    def read_blob(self, digest: str) -> bytes:
        return self._blobs.read(digest)

    def verify_blob(self, digest: str) -> BlobInfo:
        return self._blobs.verify(digest)

    def has_blob(self, digest: str) -> bool:
        return self._blobs.has(digest)

    def blob_info(self, digest: str) -> BlobInfo:
        """Digest and size from the file system (not verified)."""
        return self._blobs.info(digest)

    def blob_path(self, digest: str) -> Path:
        """Where the blob lives, for zero-copy readers; never write to it."""
        return self._blobs.path(digest)

    def blob_digests(self) -> list[str]:
        return self._blobs.digests()

    # -- layers ----------------------------------------------------------------------------------

    def put_layer(self, diff_id: str, size: int, blobs: Mapping[str, BlobInfo] | None = None) -> LayerRecord:
        """Create a layer record or merge more stored forms into it; the blobs must be stored."""
        return self._layers.put(diff_id, size, blobs)

    def add_layer_blob(self, diff_id: str, compression: str, info: BlobInfo) -> LayerRecord:
        return self._layers.add_blob(diff_id, compression, info)

    def get_layer(self, diff_id: str) -> LayerRecord:
        return self._layers.get(diff_id)

    def has_layer(self, diff_id: str) -> bool:
        return self._layers.has(diff_id)

    def layer_diff_ids(self) -> list[str]:
        return self._layers.diff_ids()

    def prepare_snapshot(self, diff_id: str | None = None) -> Path:
        """An empty directory (owned by this store until committed or aborted) to unpack a layer into."""
        return self._layers.prepare_snapshot(diff_id)

    def commit_snapshot(self, diff_id: str, tmpdir: Path | str, *, durable: bool = True) -> LayerRecord:
        return self._layers.commit_snapshot(diff_id, tmpdir, durable=durable)

    def abort_snapshot(self, tmpdir: Path | str) -> None:
        self._layers.abort_snapshot(tmpdir)

    def snapshot_path(self, diff_id: str) -> Path:
        """The committed snapshot directory of a layer (an overlay lowerdir); read-only by contract."""
        return self._layers.snapshot_path(diff_id)

    # -- images and tags -------------------------------------------------------------------------

    def put_image(self, config: BlobInfo, layers: Sequence[str], *, manifest: BlobInfo | None = None,
                  meta: Mapping[str, Any] | None = None) -> ImageRecord:
        """Record an image (id = config digest) whose config, manifest and layer records are stored."""
        return self._images.put(config, layers, manifest=manifest, meta=meta)

    def get_image(self, image_id: str) -> ImageRecord:
        return self._images.get(image_id)

    def has_image(self, image_id: str) -> bool:
        return self._images.has(image_id)

    def image_ids(self) -> list[str]:
        return self._images.ids()

    def images(self) -> list[ImageRecord]:
        return [self._images.get(i) for i in self._images.ids()]

    def remove_image(self, image_id: str) -> tuple[str, ...]:
        """Untag and forget an image (its content goes at the next GC); returns the tags removed."""
        self._images.require(image_id)
        with self.locks.shared(), self.locks.tags():
            removed = self._tags.remove_image_tags_locked(image_id)
            self._images.delete(image_id)
        return removed

    def set_tag(self, name: str, image_id: str) -> str | None:
        """Point ``name`` at an existing image; returns the previous image id, if any."""
        return self._tags.set(name, image_id)

    def remove_tag(self, name: str) -> str | None:
        return self._tags.remove(name)

    def tags(self) -> dict[str, str]:
        return self._tags.all()

    def resolve(self, name: str) -> str | None:
        """The image id a tag names, or None."""
        return self._tags.resolve(name)

    def tags_for(self, image_id: str) -> tuple[str, ...]:
        return self._tags.tags_for(image_id)

    # -- leases ----------------------------------------------------------------------------------

    def lease(self, name: str = "", refs: Iterable[str] = ()) -> Lease:
        """Take a lease on ``refs``; until it is released, content this store writes is added to it."""
        lease = leases_mod.create(self.layout.leases, name, refs, self.locks.shared)
        with self._active_lock:
            self._active.append(lease)
        return lease

    def leases(self) -> list[LeaseInfo]:
        """Live leases of every process."""
        return leases_mod.scan(self.layout.leases)[0]

    # -- pins: GC roots that outlive any process (a container keeps its image) --------------------

    def pin(self, name: str, refs: Iterable[str]) -> None:
        """Keep ``refs`` (digests) until ``unpin(name)``; taken under the shared store lock, so a GC
        running now either sees the pin or finished before it (the caller checks existence after)."""
        pins.pin(self.layout.pins, name, refs, self.locks.shared)

    def unpin(self, name: str) -> None:
        pins.unpin(self.layout.pins, name)

    def pinned(self) -> dict[str, tuple[str, ...]]:
        return pins.scan(self.layout.pins)

    def _retain(self, ref: str) -> None:
        """Add a just-published ref to this store's live leases (called under the shared store lock)."""
        with self._active_lock:
            self._active = [lease for lease in self._active if lease.active]
            active = list(self._active)
        for lease in active:
            lease.add_locked([ref])

    @property
    def cache_mounts(self):
        """The directories of ``RUN --mount=type=cache`` (``cache.cachemounts.CacheMounts``)."""
        if self._cache_mounts is None:
            from .cachemounts import CacheMounts

            self._cache_mounts = CacheMounts(self.root, self.layout.tmp)
        return self._cache_mounts

    # -- maintenance -----------------------------------------------------------------------------

    def gc(self, prune_dangling: bool = False, *, dry_run: bool = False,
           timeout: float | None = None) -> "gc_mod.GCResult":
        """Delete what no root reaches (untagged images too with ``prune_dangling``); see ``cache.gc``."""
        from . import gc as gc_mod   # lazy: builds and image commands do not collect

        return gc_mod.collect(self, prune_dangling=prune_dangling, dry_run=dry_run, timeout=timeout)

    def disk_usage(self) -> DiskUsage:
        return disk_usage(self)

    def sweep_temp(self) -> int:
        """Remove temp entries of dead processes, if the store is idle right now; returns the count."""
        lock = self.locks.exclusive()
        if not lock.try_acquire():
            return 0
        try:
            return tempfiles.sweep_stale(self.layout.tmp)[0]
        finally:
            lock.release()

    def check(self, *, verify_blobs: bool = True) -> tuple[str, ...]:
        """Problems found (empty if none): unreadable records, references to missing content, bad blobs."""
        problems: list[str] = []
        for digest in self.blob_digests() if verify_blobs else ():
            try:
                self.verify_blob(digest)
            except StoreError as e:
                problems.append(str(e))
        for diff_id in self.layer_diff_ids():
            try:
                rec = self.get_layer(diff_id)
                for info in rec.blobs.values():
                    self._blobs.require(info)
                if rec.snapshot != self.layout.snapshot_dir(diff_id).is_dir():
                    problems.append(f"layer {diff_id}: snapshot flag {rec.snapshot} but diff/ "
                                    f"{'exists' if not rec.snapshot else 'is missing'}")
            except StoreError as e:
                problems.append(f"layer {diff_id}: {e}")
        for image_id in self.image_ids():
            try:
                img = self.get_image(image_id)
                self._blobs.require(img.config)
                if img.manifest:
                    self._blobs.require(img.manifest)
                for diff_id in img.layers:
                    self.get_layer(diff_id)
            except StoreError as e:
                problems.append(f"image {image_id}: {e}")
        try:
            for name, image_id in self.tags().items():
                if not self.has_image(image_id):
                    problems.append(f"tag {name}: image {image_id} not found")
        except RecordError as e:
            problems.append(str(e))
        return tuple(problems)
