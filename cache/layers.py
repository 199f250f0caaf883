"""Layer records (``layers/<hex>/record.json``) and their unpacked snapshots (``layers/<hex>/diff/``).

A snapshot is built in an owned temp directory (``prepare_snapshot``) and published by one rename
(``commit_snapshot``), so ``diff/`` either does not exist or is complete. If two producers race, the
first rename wins and the loser's directory is discarded: one copy remains.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Callable, Mapping

from .blobs import BlobStore
from .digests import BlobInfo, digest_hex, is_digest
from .errors import RecordError, RecordNotFound, StoreError
from .fsutil import atomic_write, fsync_dir, remove_tree, sync_filesystem
from .locks import StoreLocks
from .paths import Layout
from .records import LayerRecord, RecordCache, encode
from .tempfiles import OwnedEntry, create_dir


class LayerStore:
    """Create, update and read layer records and snapshots; ``retain`` sees each diff_id written."""

    def __init__(self, layout: Layout, locks: StoreLocks, blobs: BlobStore, cache: RecordCache,
                 retain: Callable[[str], None] = lambda d: None):
        self.layout = layout
        self.locks = locks
        self.blobs = blobs
        self.cache = cache
        self._retain = retain
        self._owned: dict[Path, OwnedEntry] = {}
        self._owned_lock = threading.Lock()

    # -- records ---------------------------------------------------------------------------------

    def get(self, diff_id: str) -> LayerRecord:
        path = self.layout.layer_record(diff_id)
        try:
            return self.cache.load(path, LayerRecord.from_json)
        except FileNotFoundError:
            raise RecordNotFound("layer", diff_id) from None

    def has(self, diff_id: str) -> bool:
        return self.layout.layer_record(diff_id).is_file()

    def diff_ids(self) -> list[str]:
        try:
            names = os.listdir(self.layout.layers)
        except FileNotFoundError:
            return []
        return [d for d in ("sha256:" + n for n in sorted(names))
                if is_digest(d) and self.has(d)]

    def put(self, diff_id: str, size: int, blobs: Mapping[str, BlobInfo] | None = None) -> LayerRecord:
        """Create the record, or merge ``blobs`` into the existing one (same size required); idempotent."""
        with self.locks.shared(), self.locks.key("layer", digest_hex(diff_id)):
            for info in (blobs or {}).values():
                self.blobs.require(info)
            old = self._get_or_none(diff_id)
            if old is not None and old.size != size:
                raise RecordError(self.layout.layer_record(diff_id),
                                  f"size {size} contradicts the stored size {old.size}")
            merged = dict(old.blobs) if old else {}
            merged.update(blobs or {})
            rec = LayerRecord(diff_id, size, snapshot=bool(old and old.snapshot) or self._snapshot_exists(diff_id),
                              blobs=merged, **({"created": old.created} if old else {}))
            if rec != old:
                self._write(rec)
            self._retain(diff_id)
            return rec

    def add_blob(self, diff_id: str, compression: str, info: BlobInfo) -> LayerRecord:
        """Record a compressed (or plain tar) form of an existing layer made later, e.g. for a push."""
        rec = self.get(diff_id)
        return self.put(diff_id, rec.size, {compression: info})

    def _get_or_none(self, diff_id: str) -> LayerRecord | None:
        try:
            return self.get(diff_id)
        except RecordNotFound:
            return None

    def _write(self, rec: LayerRecord) -> None:
        layer_dir = self.layout.layer_dir(rec.diff_id)
        if not layer_dir.is_dir():
            layer_dir.mkdir(exist_ok=True)
            fsync_dir(self.layout.layers)
        atomic_write(layer_dir / "record.json", encode(rec.to_json()), self.layout.tmp)

    def _snapshot_exists(self, diff_id: str) -> bool:
        return self.layout.snapshot_dir(diff_id).is_dir()

    # -- snapshots -------------------------------------------------------------------------------

    def snapshot_path(self, diff_id: str) -> Path:
        """``layers/<hex>/diff`` of a layer whose snapshot is committed (``RecordNotFound`` otherwise)."""
        if not self.get(diff_id).snapshot:
            raise RecordNotFound("snapshot of layer", diff_id)
        return self.layout.snapshot_dir(diff_id)

    def prepare_snapshot(self, diff_id: str | None = None) -> Path:
        """An empty owned directory (mode 0755) to fill, then publish with ``commit_snapshot``.

        ``diff_id`` only names the directory; it may be unknown yet (a layer unpacked while hashed).
        """
        label = digest_hex(diff_id)[:12] if diff_id else "pending"
        with self.locks.shared():
            entry = create_dir(self.layout.tmp, f"snap-{label}")
        with self._owned_lock:
            self._owned[entry.path] = entry
        return entry.path

    def commit_snapshot(self, diff_id: str, tmpdir: Path | str, *, durable: bool = True) -> LayerRecord:
        """Publish ``tmpdir`` as the layer's ``diff/`` by one rename and mark the record.

        The layer record must exist. If a snapshot is already there (another producer won), ``tmpdir`` is
        discarded. ``durable`` flushes the filesystem first so that a crash cannot publish a
        directory whose files were never written back.
        """
        tmpdir = Path(os.path.abspath(tmpdir))
        if tmpdir.parent != self.layout.tmp or not tmpdir.is_dir():
            raise StoreError(f"{tmpdir} is not a snapshot directory prepared in {self.layout.tmp}", str(tmpdir))
        if durable:
            sync_filesystem(tmpdir)
        lost = False
        with self.locks.shared(), self.locks.key("layer", digest_hex(diff_id)):
            rec = self.get(diff_id)
            dest = self.layout.snapshot_dir(diff_id)
            if dest.is_dir():
                lost = True
            else:
                os.rename(tmpdir, dest)
                fsync_dir(dest.parent)
            if not rec.snapshot:
                rec = LayerRecord(rec.diff_id, rec.size, snapshot=True, blobs=rec.blobs, created=rec.created)
                self._write(rec)
            self._retain(diff_id)
        with self._owned_lock:
            entry = self._owned.pop(tmpdir, None)
        if lost:
            self.abort_snapshot(tmpdir, entry)
        elif entry is not None:
            entry.release()
        return rec

    def abort_snapshot(self, tmpdir: Path | str, entry: OwnedEntry | None = None) -> None:
        """Remove a prepared snapshot directory that will not be committed."""
        tmpdir = Path(os.path.abspath(tmpdir))
        if entry is None:
            with self._owned_lock:
                entry = self._owned.pop(tmpdir, None)
        if entry is not None:
            entry.discard()
        elif tmpdir.parent == self.layout.tmp:
            remove_tree(tmpdir)

    def close(self) -> None:
        """Discard every snapshot directory prepared but never committed by this object."""
        with self._owned_lock:
            entries, self._owned = list(self._owned.values()), {}
        for entry in entries:
            entry.discard()
