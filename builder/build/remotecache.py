"""``--cache-to`` / ``--cache-from``: the build cache shared between machines (format: ``cacheformat``).

A step's cache key is the same on every machine (``cachekey``: content digests, image IDs, never a
path or a time), so a cache is just key -> layer. At build start each ``--cache-from`` is read into
a map key -> entry (the manifest and a small config; a missing cache is a warning, as in buildx);
on a local miss the executor asks ``CacheImports.restore``, which fetches that step's layer blob —
only then — stores it (unpacked, verified against its digest and diff_id) and records the entry in
the local build cache, so the step is reported CACHED. After the build, each ``--cache-to``
receives the entries of the final stage's chain (``mode=min``) or of every stage built
(``mode=max``): an OCI image layout directory (``type=local,dest=``), a registry artifact
(``type=registry,ref=``), or the image config itself (``type=inline``).

Specs: ``cachespec``; where imported entries come from: ``cachesources``.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Callable, Iterable

from cache.errors import StoreError

from ..errors import PybuildError
from ..fs.atomic import write_atomically
from ..image import mediatypes as mt
from .cacheformat import CacheFormatError, CacheRecord, RemoteEntry
from .cachesources import LayoutSource, RegistrySource
from .cachespec import CacheExportError, CacheSpec, parse_cache_specs

__all__ = [
    "CacheExportError",
    "CacheImports",
    "CacheSpec",
    "export_cache",
    "load_imports",
    "parse_cache_specs",
    "records_for",
    "with_inline",
]

_WORKERS = 4         # layers compressed / uploaded at once
_CHUNKED_FROM = 128 << 20   # layers this large are uploaded in resumable chunks
_CHUNK = 64 << 20

# ----------------------------------------------------------------------------------------------
# import


class CacheImports:
    """The entries of every ``--cache-from``, and the restore of one on a local miss."""

    def __init__(self, store, entries: dict):
        self.store = store
        self.entries = entries              # key -> [(RemoteEntry, source)], in --cache-from order
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def __len__(self) -> int:
        return len(self.entries)

    def _lock(self, diff_id: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(diff_id, threading.Lock())

    def restore(self, key: str, layer_key: str = "", *, warn: Callable[[str], None] = lambda m: None,
                note: Callable[[str], None] = lambda m: None):
        """The local ``CacheEntry`` for ``key`` made from a remote entry (its layer fetched and stored),
        or None: no remote entry, or its layer could not be had (``warn`` says why; the step runs).
        ``note`` hears of each layer downloaded."""
        candidates = self.entries.get(key) or (self.entries.get(layer_key, ()) if layer_key else ())
        for number, (entry, source) in enumerate(candidates, 1):
            if entry.diff_id is None:
                break
            try:
                with self._lock(entry.diff_id):
                    if self._fetch(entry, source):
                        note(f"imported layer {entry.layer.digest} ({entry.layer.size} bytes) from "
                             f"{source.describe()}")
                break
            except (PybuildError, StoreError, OSError, ValueError) as err:   # the next source, or run the step
                then = "trying the next cache" if number < len(candidates) else "running the step"
                warn(f"cache layer {entry.layer.digest if entry.layer else entry.diff_id} from "
                     f"{source.describe()} could not be used ({_reason(err)}); {then}")
        else:
            return None
        size = self.store.get_layer(entry.diff_id).size if entry.diff_id else 0
        local = self.store.build_cache.put(key, entry.diff_id, size, created=entry.created)
        if layer_key:
            self.store.build_cache.put(layer_key, entry.diff_id, size, created=entry.created)
        return local

    def _fetch(self, entry: RemoteEntry, source) -> bool:
        """Make the entry's layer usable here; True if its blob had to be downloaded."""
        from ..images.layers import ensure_snapshot, store_layer_blob

        store = self.store
        if store.has_layer(entry.diff_id):
            ensure_snapshot(store, entry.diff_id)
            return False
        if entry.layer is None:
            raise CacheFormatError(f"no blob for layer {entry.diff_id}")
        with source.open_blob(entry.layer.digest) as stream:
            diff_id, _, _ = store_layer_blob(store, stream, expected=entry.layer.digest)
        if diff_id != entry.diff_id:
            raise CacheFormatError(f"blob {entry.layer.digest} holds layer {diff_id}, not {entry.diff_id}")
        return True


def _reason(err: BaseException) -> str:
    return getattr(err, "message", None) or str(err) or type(err).__name__


def load_imports(store, specs: Iterable[CacheSpec], *, platform=None,
                 warn: Callable[[str], None] = lambda m: None) -> CacheImports | None:
    """Read every ``--cache-from`` (manifest + config only); one that cannot be read is a warning."""
    specs = tuple(specs)
    if not specs:
        return None
    if platform is None:
        from ..image.platform import host_platform

        platform = host_platform()
    entries: dict = {}
    for spec in specs:
        try:
            source = LayoutSource(spec.path) if spec.type == "local" else RegistrySource(spec.ref)
            found = source.load(platform)
        except (PybuildError, OSError, ValueError) as err:   # buildx: an import that fails warns (a missing
                                                              # cache is CacheMissing); a bug still raises
            warn(f"cache import from {spec.describe()} skipped: {_reason(err)}")
            continue
        for key, value in found.items():
            entries.setdefault(key, []).append(value)
    return CacheImports(store, entries)


# ----------------------------------------------------------------------------------------------
# export


def records_for(graph, records: dict, target: int, mode: str) -> list[CacheRecord]:
    """The entries a ``mode`` export carries: the target stage and the stages it is built FROM
    (min: what the final image is made of), or every stage built (max)."""
    if mode == "max":
        order = list(graph.needed)
    else:
        order, index = [], target
        while True:
            order.append(index)
            base = graph.nodes[index].base
            if base.kind != "stage":
                break
            index = base.index
        order.reverse()
    out: list[CacheRecord] = []
    for index in order:
        out.extend(records.get(index, ()))
    return out


def with_inline(config, records: Iterable[CacheRecord] | None):
    """The image config with the inline cache entries (``type=inline``) under our own key; with
    ``records`` None, without any (the config itself when it has none)."""
    from dataclasses import replace

    from ..image.canonical import FrozenMap, freeze
    from .cacheformat import INLINE_KEY, inline_value

    if records is None:
        if INLINE_KEY not in config.extra:
            return config
        return replace(config, extra=FrozenMap({k: v for k, v in config.extra.items() if k != INLINE_KEY}))
    return replace(config, extra=FrozenMap({**config.extra, INLINE_KEY: freeze(inline_value(records))}))


def export_cache(store, spec: CacheSpec, records: list[CacheRecord]) -> str | None:
    """Write ``records`` and their layers to a ``type=local`` or ``type=registry`` destination.
    A failure is a CacheExportError, or with ``ignore-error=true`` the message returned."""
    from concurrent.futures import ThreadPoolExecutor

    from ..images.layers import layer_blob
    from .cacheformat import build_artifact, unique

    records = unique(records)
    try:
        diff_ids = list(dict.fromkeys(r.diff_id for r in records if r.diff_id))
        with ThreadPoolExecutor(max_workers=_WORKERS, thread_name_prefix="pybuild-cache-gzip") as pool:
            infos = list(pool.map(lambda d: layer_blob(store, d, "gzip"), diff_ids))   # made once, kept
        blobs = {d: (info.digest, info.size) for d, info in zip(diff_ids, infos)}
        manifest, config, layers = build_artifact(records, blobs)
        if spec.type == "local":
            _write_layout(store, spec.path, manifest, config, layers)
        else:
            _push(store, spec.ref, manifest, config, layers)
    except (PybuildError, OSError) as err:
        if isinstance(err, PybuildError):
            message = err.message
        else:
            message = f"{err.strerror or err}" + (f": {err.filename}" if err.filename else "")
        if spec.ignore_error:
            return message
        raise CacheExportError(f"--cache-to {spec.text}: {message}") from None
    return None


def _write_layout(store, dest: str, manifest: bytes, config: bytes, layers: list) -> None:
    """An OCI image layout: blobs first (each complete before it is visible), index.json last."""
    from .cacheformat import CACHE_CONFIG

    blobs_dir = os.path.join(dest, "blobs", "sha256")
    os.makedirs(blobs_dir, exist_ok=True)

    def put(digest: str, write) -> None:
        path = os.path.join(blobs_dir, digest.partition(":")[2])
        if not os.path.exists(path):
            write_atomically(path, write)

    def copy(digest: str):
        import shutil

        def write(fh):
            with store.open_blob(digest) as src:
                shutil.copyfileobj(src, fh, 1 << 20)
        return write

    for layer in layers:
        put(layer.digest, copy(layer.digest))
    config_digest = "sha256:" + hashlib.sha256(config).hexdigest()
    manifest_digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
    put(config_digest, lambda fh: fh.write(config))
    put(manifest_digest, lambda fh: fh.write(manifest))
    write_atomically(os.path.join(dest, "oci-layout"), lambda fh: fh.write(b'{"imageLayoutVersion":"1.0.0"}'))
    index = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX,
             "manifests": [{"mediaType": mt.OCI_MANIFEST, "digest": manifest_digest, "size": len(manifest),
                            "artifactType": CACHE_CONFIG}]}
    write_atomically(os.path.join(dest, "index.json"), lambda fh: fh.write(json.dumps(index, indent=2).encode() + b"\n"))


def _push(store, ref: str, manifest: bytes, config: bytes, layers: list) -> None:
    """Layer blobs (those the registry lacks), the config, then the manifest under the ref's tag."""
    import io
    from concurrent.futures import ThreadPoolExecutor

    target = RegistrySource(ref)
    registry, repo = target.registry, target.repo
    tag = target.reference.tag or "latest"

    def push_layer(layer) -> None:
        if registry.blob_size(repo, layer.digest) is not None:
            return

        def opener(offset: int):
            if not offset:
                return store.open_blob(layer.digest)     # verified as it is read
            stream = open(store.blob_path(layer.digest), "rb")  # noqa: SIM115 (the uploader closes it)
            stream.seek(offset)
            return stream

        registry.upload_blob(repo, layer.digest, layer.size, opener,
                             chunk_size=_CHUNK if layer.size >= _CHUNKED_FROM else None)

    with ThreadPoolExecutor(max_workers=_WORKERS, thread_name_prefix="pybuild-cache-push") as pool:
        for _ in pool.map(push_layer, layers):
            pass
    config_digest = "sha256:" + hashlib.sha256(config).hexdigest()
    if registry.blob_size(repo, config_digest) is None:
        registry.upload_blob(repo, config_digest, len(config), lambda offset: io.BytesIO(config[offset:]))
    registry.put_manifest(repo, tag, manifest, mt.OCI_MANIFEST)
