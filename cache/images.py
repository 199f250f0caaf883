"""Image records: ``images/<config hex>.json``, written after everything they refer to exists."""

from __future__ import annotations

import os
from typing import Any, Callable, Mapping, Sequence

from .blobs import BlobStore
from .digests import BlobInfo, digest_hex, is_digest
from .errors import RecordNotFound
from .fsutil import atomic_write, fsync_dir
from .layers import LayerStore
from .locks import StoreLocks
from .paths import Layout
from .records import ImageRecord, RecordCache, encode


class ImageStore:
    """Create, read and delete image records; ``retain`` sees each image id written."""

    def __init__(self, layout: Layout, locks: StoreLocks, blobs: BlobStore, layers: LayerStore,
                 cache: RecordCache, retain: Callable[[str], None] = lambda d: None):
        self.layout = layout
        self.locks = locks
        self.blobs = blobs
        self.layers = layers
        self.cache = cache
        self._retain = retain

    def get(self, image_id: str) -> ImageRecord:
        try:
            return self.cache.load(self.layout.image_record(image_id), ImageRecord.from_json)
        except FileNotFoundError:
            raise RecordNotFound("image", image_id) from None

    def has(self, image_id: str) -> bool:
        return self.layout.image_record(image_id).is_file()

    def ids(self) -> list[str]:
        try:
            names = os.listdir(self.layout.images)
        except FileNotFoundError:
            return []
        return [d for d in ("sha256:" + n[:-5] for n in sorted(names) if n.endswith(".json")) if is_digest(d)]

    def put(self, config: BlobInfo, layers: Sequence[str], *, manifest: BlobInfo | None = None,
            meta: Mapping[str, Any] | None = None) -> ImageRecord:
        """Write the record of the image whose config is ``config``; its blobs and layers must be stored.

        Re-putting an image keeps its ``created`` time, and its manifest and meta unless new ones are given.
        """
        with self.locks.shared():
            self.blobs.require(config)
            if manifest is not None:
                self.blobs.require(manifest)
            sizes = {d: self.layers.get(d).size for d in layers}  # RecordNotFound for a missing layer
            try:
                old: ImageRecord | None = self.get(config.digest)
            except RecordNotFound:
                old = None
            extra: dict[str, Any] = {"created": old.created} if old else {}
            rec = ImageRecord(
                id=config.digest, config=config, layers=tuple(layers),
                manifest=manifest if manifest is not None else (old.manifest if old else None),
                size=sum(sizes.values()), meta=meta if meta is not None else (old.meta if old else {}), **extra)
            if rec != old:
                atomic_write(self.layout.image_record(rec.id), encode(rec.to_json()), self.layout.tmp)
            self._retain(rec.id)
            return rec

    def delete(self, image_id: str) -> bool:
        """Remove the record (content stays for GC); call under the shared store lock."""
        path = self.layout.image_record(image_id)
        try:
            os.unlink(path)
        except FileNotFoundError:
            return False
        self.cache.forget(path)
        fsync_dir(self.layout.images)
        return True

    def require(self, image_id: str) -> None:
        digest_hex(image_id)
        if not self.has(image_id):
            raise RecordNotFound("image", image_id)
