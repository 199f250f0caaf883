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

Spec syntax is buildx's: CSV ``key=value`` fields, a bare value being a registry reference.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import threading
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from dataclasses import dataclass

from ..errors import PybuildError, UsageError
from ..image import mediatypes as mt
from .cacheformat import CacheFormatError, CacheRecord, RemoteEntry

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

_TYPES = ("registry", "local", "inline")
# buildx attributes that describe what we always write (an OCI image manifest, gzip layers): accepted
_ALWAYS = ("oci-mediatypes", "image-manifest", "compression")
_TO_ATTRS = {"registry": ("ref", "mode", "ignore-error", *_ALWAYS), "local": ("dest", "mode", "ignore-error", *_ALWAYS),
             "inline": ()}
_FROM_ATTRS = {"registry": ("ref",), "local": ("src",), "inline": ()}
_SMALL = 16 << 20   # manifests and cache configs are read into memory; refuse anything bigger
_WORKERS = 4         # layers compressed / uploaded at once
_CHUNKED_FROM = 128 << 20   # layers this large are uploaded in resumable chunks
_CHUNK = 64 << 20


class CacheExportError(PybuildError):
    """Writing a ``--cache-to`` destination failed (the build itself succeeded)."""


@dataclass(frozen=True)
class CacheSpec:
    type: str                 # registry | local | inline
    ref: str = ""             # registry: HOST/REPO[:TAG]
    path: str = ""            # local: dest (--cache-to) or src (--cache-from)
    mode: str = "min"         # --cache-to: min (the final stage's chain) | max (every stage built)
    ignore_error: bool = False
    text: str = ""

    def describe(self) -> str:
        if self.type == "registry":
            return f"registry {self.ref}"
        if self.type == "local":
            return f"directory {self.path}"
        return "the image config (inline)"


def _bool(value: str, flag: str, text: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "t", "true"):
        return True
    if lowered in ("0", "f", "false"):
        return False
    raise UsageError(f"{flag} {text}: {value!r} is not a boolean")


def parse_cache_spec(text: str, *, to: bool) -> CacheSpec:
    """One ``--cache-to`` (``to``) or ``--cache-from`` value."""
    flag = "--cache-to" if to else "--cache-from"
    try:
        fields = next(csv.reader([text]), [])
    except csv.Error as err:
        raise UsageError(f"{flag} {text}: {err}") from None
    if len(fields) == 1 and "=" not in fields[0]:
        return CacheSpec("registry", ref=fields[0].strip(), text=text)   # buildx: a bare ref
    attrs: dict[str, str] = {}
    for field in fields:
        key, sep, value = field.partition("=")
        if not sep:
            raise UsageError(f"{flag} {text}: invalid value {field!r} (expected key=value)")
        attrs[key.strip().lower()] = value.strip()
    kind = attrs.pop("type", "")
    if not kind:
        raise UsageError(f"{flag} {text}: type is required")
    if kind not in _TYPES:
        raise UsageError(f"{flag} {text}: cache type {kind!r} is not supported (use registry, local or inline)")
    known = (_TO_ATTRS if to else _FROM_ATTRS)[kind]
    for key in attrs:
        if key not in known:
            takes = f"it takes {', '.join(known)}" if known else "it takes none"
            raise UsageError(f"{flag} {text}: type={kind} has no attribute {key!r} ({takes})")
    if attrs.get("compression", "gzip") != "gzip":
        raise UsageError(f"{flag} {text}: only compression=gzip is supported for the cache")
    for key in ("oci-mediatypes", "image-manifest"):
        if key in attrs and not _bool(attrs[key], flag, text):
            raise UsageError(f"{flag} {text}: {key}=false is not supported (the cache is an OCI image manifest)")
    mode = attrs.get("mode", "min")
    if mode not in ("min", "max"):
        raise UsageError(f"{flag} {text}: mode must be min or max, not {mode!r}")
    spec = CacheSpec(kind, ref=attrs.get("ref", ""), path=attrs.get("dest" if to else "src", ""), mode=mode,
                     ignore_error=_bool(attrs["ignore-error"], flag, text) if "ignore-error" in attrs else False,
                     text=text)
    if kind == "registry" and not spec.ref:
        raise UsageError(f"{flag} {text}: ref is required for a registry cache")
    if kind == "local" and not spec.path:
        raise UsageError(f"{flag} {text}: {'dest' if to else 'src'} is required for a local cache")
    if kind == "inline" and not to:
        raise UsageError(f"{flag} {text}: inline cache is read from an image: --cache-from REF")
    if spec.ref:
        _reference(spec.ref, flag, text)
    return spec


def parse_cache_specs(values: Iterable[str], *, to: bool) -> tuple[CacheSpec, ...]:
    return tuple(parse_cache_spec(v, to=to) for v in values if v.strip())


def _reference(ref: str, flag: str = "", text: str = ""):
    from ..errors import InvalidReference
    from ..image.reference import parse_reference

    try:
        return parse_reference(ref)
    except InvalidReference as err:
        if flag:
            raise UsageError(f"{flag} {text}: {err.message}") from None
        raise


# ----------------------------------------------------------------------------------------------
# where entries come from


class _Layout:
    """An OCI image layout directory (``type=local``)."""

    def __init__(self, path: str):
        self.path = path

    def describe(self) -> str:
        return f"directory {self.path}"

    def _blob_path(self, digest: str) -> str:
        algorithm, _, hex_ = digest.partition(":")
        if algorithm != "sha256" or len(hex_) != 64 or not all(c in "0123456789abcdef" for c in hex_):
            raise CacheFormatError(f"{self.describe()}: not a sha256 digest: {digest!r}")
        return os.path.join(self.path, "blobs", algorithm, hex_)

    @contextmanager
    def open_blob(self, digest: str):
        with open(self._blob_path(digest), "rb") as fh:
            yield fh

    def read_blob(self, digest: str) -> bytes:
        with self.open_blob(digest) as fh:
            data = fh.read(_SMALL + 1)
        return _checked(data, digest, self.describe())

    def load(self, platform) -> dict:
        try:
            with open(os.path.join(self.path, "index.json"), "rb") as fh:
                index = json.loads(fh.read(_SMALL))
        except FileNotFoundError:
            raise _Missing(f"{self.describe()} has no cache (no index.json)") from None
        except ValueError as err:
            raise CacheFormatError(f"{self.describe()}: index.json is not JSON: {err}") from None
        manifests = index.get("manifests") if isinstance(index, dict) else None
        if not isinstance(manifests, list) or not manifests:
            raise _Missing(f"{self.describe()} has no cache (an empty index.json)")
        from .cacheformat import CACHE_CONFIG

        ours = [m for m in manifests if isinstance(m, dict) and m.get("artifactType") == CACHE_CONFIG]
        chosen = (ours or manifests)[-1]
        if not isinstance(chosen, dict) or not isinstance(chosen.get("digest"), str):
            raise CacheFormatError(f"{self.describe()}: index.json has no manifest digest")
        return _entries_from(self, self.read_blob(chosen["digest"]), chosen.get("mediaType", ""), platform)


class _Registry:
    """A repository in a registry (``type=registry``, or an image carrying inline cache)."""

    def __init__(self, ref: str):
        from ..registry.client import Registry

        self.reference = _reference(ref)
        self.repo = self.reference.path
        self.registry = Registry.for_reference(self.reference)
        self.ref = ref

    def describe(self) -> str:
        return f"registry {self.ref}"

    @contextmanager
    def open_blob(self, digest: str):
        with self.registry.open_blob(self.repo, digest) as stream:
            yield stream

    def read_blob(self, digest: str) -> bytes:
        return self.registry.fetch_blob(self.repo, digest, limit=_SMALL)   # checked against its digest

    def load(self, platform) -> dict:
        from ..registry.errors import ManifestNotFound

        tag = self.reference.digest or self.reference.tag or "latest"
        try:
            fetched = self.registry.get_manifest(self.repo, tag)
        except ManifestNotFound:
            raise _Missing(f"{self.describe()} not found") from None
        return _entries_from(self, fetched.data, fetched.media_type, platform, fetch_manifest=self._manifest)

    def _manifest(self, digest: str) -> tuple[bytes, str]:
        fetched = self.registry.get_manifest(self.repo, digest)
        return fetched.data, fetched.media_type


class _Missing(PybuildError):
    """No cache at that place (a warning: the first build has nothing to import)."""


def _checked(data: bytes, digest: str, where: str) -> bytes:
    if len(data) > _SMALL:
        raise CacheFormatError(f"{where}: {digest} is too large for a cache manifest or config")
    if "sha256:" + hashlib.sha256(data).hexdigest() != digest:
        raise CacheFormatError(f"{where}: {digest} does not match its content")
    return data


def _entries_from(source, data: bytes, media_type: str, platform, fetch_manifest=None) -> dict:
    """key -> (RemoteEntry, source) from a cache manifest, an image manifest with inline cache, or an
    index (its entry for ``platform``)."""
    from ..image.config import parse_config
    from ..image.index import parse_document, select_manifest
    from ..image.manifest import Manifest
    from .cacheformat import is_cache_manifest, read_artifact, read_inline

    document = parse_document(data, media_type)
    if not isinstance(document, Manifest):
        chosen = select_manifest(document, platform)
        if fetch_manifest is not None:
            data, media_type = fetch_manifest(chosen.digest)
            data = _checked(data, chosen.digest, source.describe())
        else:
            data, media_type = source.read_blob(chosen.digest), chosen.media_type
        document = parse_document(data, media_type)
        if not isinstance(document, Manifest):
            raise CacheFormatError(f"{source.describe()}: an index inside an index")
    config = source.read_blob(document.config.digest)
    if is_cache_manifest(document):
        entries = read_artifact(document, config)
    elif mt.is_config(document.config.media_type):
        entries = read_inline(parse_config(config), document)
    else:
        raise CacheFormatError(f"{source.describe()} is neither a pybuild cache nor an image "
                               f"(config type {document.config.media_type})")
    return {key: (entry, source) for key, entry in entries.items()}


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

    def restore(self, key: str, layer_key: str = "", *, warn: Callable[[str], None] = lambda m: None):
        """The local ``CacheEntry`` for ``key`` made from a remote entry (its layer fetched and stored),
        or None: no remote entry, or its layer could not be had (``warn`` says why; the step runs)."""
        candidates = self.entries.get(key) or (self.entries.get(layer_key, ()) if layer_key else ())
        for number, (entry, source) in enumerate(candidates, 1):
            if entry.diff_id is None:
                break
            try:
                with self._lock(entry.diff_id):
                    self._fetch(entry, source)
                break
            except Exception as err:  # noqa: BLE001 (any failure to get the layer: the next source, or run)
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

    def _fetch(self, entry: RemoteEntry, source) -> None:
        from ..images.layers import ensure_snapshot, store_layer_blob

        store = self.store
        if store.has_layer(entry.diff_id):
            ensure_snapshot(store, entry.diff_id)
            return
        if entry.layer is None:
            raise CacheFormatError(f"no blob for layer {entry.diff_id}")
        with source.open_blob(entry.layer.digest) as stream:
            diff_id, _, _ = store_layer_blob(store, stream, expected=entry.layer.digest)
        if diff_id != entry.diff_id:
            raise CacheFormatError(f"blob {entry.layer.digest} holds layer {diff_id}, not {entry.diff_id}")


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
            source = _Layout(spec.path) if spec.type == "local" else _Registry(spec.ref)
            found = source.load(platform)
        except Exception as err:  # noqa: BLE001 (buildx: an import that fails is a warning, not an error)
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
        if os.path.exists(path):
            return
        tmp = f"{path}.tmp{os.getpid()}.{threading.get_ident()}"
        try:
            with open(tmp, "wb") as fh:
                write(fh)
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise

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
    _write_small(os.path.join(dest, "oci-layout"), b'{"imageLayoutVersion":"1.0.0"}')
    index = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX,
             "manifests": [{"mediaType": mt.OCI_MANIFEST, "digest": manifest_digest, "size": len(manifest),
                            "artifactType": CACHE_CONFIG}]}
    _write_small(os.path.join(dest, "index.json"), json.dumps(index, indent=2).encode() + b"\n")


def _write_small(path: str, data: bytes) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


def _push(store, ref: str, manifest: bytes, config: bytes, layers: list) -> None:
    """Layer blobs (those the registry lacks), the config, then the manifest under the ref's tag."""
    import io
    from concurrent.futures import ThreadPoolExecutor

    target = _Registry(ref)
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
