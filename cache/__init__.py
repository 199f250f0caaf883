"""Content-addressed blob/layer store and build-cache index.

This package knows nothing of Dockerfiles and never imports ``builder`` (a test scans the sources).

Layout under the state root (``paths.default_root``: ``PYBUILD_ROOT``, else ``/var/lib/pybuild`` for
root, else ``$XDG_DATA_HOME/pybuild`` or ``~/.local/share/pybuild``)::

    blobs/sha256/<hex>         content blobs: configs, manifests, layer tars (plain and compressed)
    layers/<diff_id hex>/      record.json (LayerRecord) and diff/ (the unpacked snapshot, if any)
    images/<config hex>.json   ImageRecord (id = config digest)
    tags.json                  reference name -> image id
    leases/<id>.lease          live operations' refs (GC roots while their owner lives)
    locks/                     store.lock, tags.lock, keys/<kind>-<hex>.lock
    tmp/                       temp files and directories, on the same filesystem as the rest

Contracts
---------
Put is idempotent.
    Storing content that is already stored changes nothing visible and returns the same
    ``BlobInfo``. With an expected digest, an existing blob that verifies wins and the source is not
    read; otherwise the new copy, hashed as it was written, replaces it by rename (equal bytes).
    An expected digest or size that does not match raises ``DigestMismatch`` naming both, and the
    temp file is removed. Re-putting a layer or image record merges into the stored one.
Reads verify.
    ``read_blob`` and ``verify_blob`` hash the bytes they read; ``open_blob`` hashes as the caller
    reads and raises ``CorruptBlob`` (naming the digest and the path) when the last byte is read.
    Records that do not parse raise ``RecordError`` naming the file.
What is atomic.
    A blob appears under ``blobs/`` only by rename of a complete temp file that was hashed while
    written and fsynced (then the directory is fsynced): a half-written blob is never visible, not
    after an exception, not after SIGKILL. Records and ``tags.json`` are replaced the same way.
    A snapshot ``diff/`` appears by one rename of a complete directory (after ``syncfs``).
    Records are written bottom-up and each write checks, under the shared store lock, that what it
    refers to is stored: blobs, then layer records, then image records, then tags. So no record
    ever points at missing content.
What locks protect (``locks``; flock, so a dead holder never keeps a lock).
    The store lock is shared by writers while they create a temp entry and while they publish
    (rename, record, tag, lease entry) and exclusive for GC and for the temp sweep, so GC never runs
    between a writer's check and its publication. The tags lock serialises tag read-modify-writes.
    Per-key locks (a blob digest, a layer) make concurrent producers of one object do the work once
    (or harmlessly twice: the first rename wins, one consistent copy remains). A lock not acquired
    within the timeout raises ``LockTimeout`` naming the lock and, if known, the holder pid.
    Reads take no lock: an open file stays readable even if GC unlinks it; hold a lease to keep it.
Temp entries.
    Each temp file or directory under ``tmp/`` is flocked by its creator; one whose owner has died
    is stale and is removed when a store is opened (if idle) and by every GC.
What GC may delete, and when.
    ``gc()`` holds the exclusive store lock. Roots are: tagged images, refs of live leases (a lease
    whose owner died is stale, ignored and removed), refs from registered root providers, and --
    unless ``prune_dangling=True`` -- every image record. Reachable: an image's config, manifest
    (and every digest it names) and layers; a layer's record, snapshot and blobs. Plain GC deletes
    only blobs and layers that no image record and no root reaches; ``gc(prune_dangling=True)`` also
    deletes untagged images that no lease or provider holds. Stale temp entries, stale leases and
    unused key locks are removed by both. Content written but not yet referenced is garbage unless a
    lease holds it: take a lease first (writes through a ``Store`` add to its live leases).

Errors: see ``cache.errors`` (``StoreError`` and its subclasses).
"""

import importlib

# Names load on first use (PEP 562), so ``import cache.paths`` or ``cache.errors`` stays cheap for
# hot paths (the CLI's error handling, the no-op rebuild) that need one small module.
_EXPORTS = {
    "BlobInfo": "digests", "BlobNotFound": "errors", "CorruptBlob": "errors", "DigestMismatch": "errors",
    "InvalidDigest": "errors", "LockTimeout": "errors", "RecordError": "errors", "RecordNotFound": "errors",
    "StoreError": "errors", "GCResult": "gc", "register_root_provider": "gc", "unregister_root_provider": "gc",
    "Lease": "leases", "LeaseInfo": "leases", "default_root": "paths", "ImageRecord": "records",
    "LayerRecord": "records", "Store": "store", "DiskUsage": "usage",
}


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


__all__ = [
    "Store", "default_root",
    "BlobInfo", "LayerRecord", "ImageRecord", "Lease", "LeaseInfo", "GCResult", "DiskUsage",
    "register_root_provider", "unregister_root_provider",
    "StoreError", "InvalidDigest", "BlobNotFound", "CorruptBlob", "DigestMismatch", "RecordNotFound",
    "RecordError", "LockTimeout",
]
