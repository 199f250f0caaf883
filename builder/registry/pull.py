"""``pybuild pull``: an image from a registry into the local store.

The manifest (an index or manifest list is resolved to the wanted platform), the config, then the
layers, several at once. Every layer blob is stored byte-exact as the registry sent it (hashed while
it is written, checked against the manifest's digest and size) and its tar is hashed on the way
(checked against the config's diff_id), so a later push sends the same blobs and the same manifest.
Layers are not unpacked here: ``layers.ensure_snapshot`` unpacks a layer when a build or a container
first uses it. That keeps a pull to one sequential write per blob (what skopeo does), and a base
image whose upper layers are never used (``COPY --from=image /one/file``) is never unpacked whole.

Blobs already stored are not downloaded. Nothing is half-stored: the image record and the tag are
written last, and a failed pull removes what it had stored (everything it wrote is held by the pull's
lease until then; a GC after releasing it removes exactly what no image, tag or other lease reaches).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from cache.digests import BlobInfo

from ..errors import ImageError, LayerError
from ..image import mediatypes as mt
from ..image.platform import Platform, host_platform, normalize_platform
from .errors import BlobDigestMismatch, ManifestNotFound
from .parallel import Cancelled, run_all
from .progress import Quiet, TransferProgress

WORKERS = 4                      # layers downloaded at once
_READ = 1 << 20                  # bytes per read from the registry
_MAX_DOCUMENT = 16 << 20         # manifests and configs are read into memory; larger is refused
_MAX_INDEX_DEPTH = 4


@dataclass(frozen=True)
class PullResult:
    image_id: str
    name: str                    # the normalized reference pulled (``host/repo:tag`` or ``host/repo@digest``)
    digest: str                  # what the reference resolved to (an index's digest for a multi-platform image)
    manifest_digest: str         # the image manifest stored with the image
    tagged: str | None           # the tag set, None for a pull by digest
    downloaded: bool             # False: everything was in the store already
    platform: str                # the image's os/arch[/variant] from its config


def pull(store, name: str, *, platform: Platform | None = None, strict_platform: bool = False,
         progress: TransferProgress | None = None, registry=None, cleanup: bool = True) -> PullResult:
    """Pull ``name`` (``REPO[:TAG]`` or ``REPO@DIGEST``) for ``platform`` (default: this machine's).

    ``strict_platform``: a single-platform image of another platform is an error (``pull --platform``);
    builds pass False and warn instead (BuildKit's InvalidBaseImagePlatform). ``cleanup``: collect what
    a failed pull stored (a build passes False: its own lease holds that content until it ends anyway).
    """
    from ..image.reference import parse_normalized_named

    progress = progress or Quiet()
    ref = parse_normalized_named(name).docker_ref()
    if registry is None:
        from .client import Registry

        registry = Registry.for_reference(ref)
    want = normalize_platform(platform) if platform is not None else host_platform()
    try:
        return _Pull(store, registry, ref, want, strict_platform, progress, cleanup).run()
    finally:
        progress.close()


def _display(ref) -> str:
    return f"{ref.name}@{ref.digest}" if ref.digest else f"{ref.name}:{ref.tag}"


class _Pull:
    def __init__(self, store, registry, ref, want: Platform, strict: bool, progress: TransferProgress,
                 cleanup: bool = True):
        self.store = store
        self.cleanup = cleanup
        self.reg = registry
        self.ref = ref
        self.repo = ref.path
        self.want = want
        self.strict = strict
        self.progress = progress
        self.cancel = threading.Event()

    # -- documents ---------------------------------------------------------------------------------

    def _get_manifest(self, reference: str, what: str):
        try:
            return self.reg.get_manifest(self.repo, reference)
        except ManifestNotFound as err:
            raise ManifestNotFound(f"manifest for {what} not found: manifest unknown (registry {self.reg.host}, "
                                   f"repository {self.repo}, {'digest' if ':' in reference else 'tag'} "
                                   f"{reference})", err.registry or self.reg.host) from None

    def resolve(self):
        """(top-level digest, image manifest document, its bytes, its digest)."""
        from ..image.digest import sha256_digest
        from ..image.index import ImageIndex, parse_document, select_manifest

        fetched = self._get_manifest(self.ref.digest or self.ref.tag, _display(self.ref))
        top = sha256_digest(fetched.data)
        if self.ref.digest and top != self.ref.digest:
            raise BlobDigestMismatch(f"manifest {self.ref.digest} from {self.reg.host}/{self.repo} hashes to {top}",
                                     self.reg.host)
        data, media_type, digest = fetched.data, fetched.media_type, top
        for _ in range(_MAX_INDEX_DEPTH):
            document = parse_document(data, media_type, digest)
            if not isinstance(document, ImageIndex):
                return top, document, data, digest
            try:
                entry = select_manifest(document, self.want)
            except ImageError as err:
                raise ImageError(f"{_display(self.ref)}: {err.message}", str(self.ref)) from None
            fetched = self._get_manifest(entry.digest, f"{self.ref.name}@{entry.digest}")
            data, media_type = fetched.data, fetched.media_type or entry.media_type
            digest = sha256_digest(data)
            if digest != entry.digest:
                raise BlobDigestMismatch(f"manifest {entry.digest} from {self.reg.host}/{self.repo} hashes to "
                                         f"{digest}", self.reg.host)
        raise ImageError(f"{_display(self.ref)}: image indexes nested more than {_MAX_INDEX_DEPTH} deep")

    def _small_blob(self, descriptor) -> bytes:
        """A config: from the store if there, else downloaded whole (the client checks its digest)."""
        if self.store.has_blob(descriptor.digest):
            return self.store.read_blob(descriptor.digest)
        if descriptor.size > _MAX_DOCUMENT:
            raise ImageError(f"{_display(self.ref)}: config {descriptor.digest} is {descriptor.size} bytes; "
                             "that is too large for an image config")
        data = self.reg.fetch_blob(self.repo, descriptor.digest, limit=_MAX_DOCUMENT)
        if len(data) != descriptor.size:
            raise BlobDigestMismatch(f"blob {descriptor.digest} from {self.reg.host}/{self.repo} has {len(data)} "
                                     f"bytes, the manifest says {descriptor.size}", self.reg.host)
        return data

    # -- the pull ------------------------------------------------------------------------------------

    def run(self) -> PullResult:
        from ..image.config import parse_config
        from ..image.platform import Platform

        ref = self.ref
        top, manifest, manifest_data, manifest_digest = self.resolve()
        if ref.tag:   # once the tag is known to exist: a failed lookup shows the error alone
            self.progress.line(f"{ref.tag}: Pulling from {ref.path if ref.domain == 'docker.io' else ref.name}")
        config_data = self._small_blob(manifest.config)
        config = parse_config(config_data, manifest.config.digest)
        have = Platform(config.os, config.architecture, config.variant)
        if self.strict and (have.os, have.architecture) != (self.want.os, self.want.architecture):
            raise ImageError(f"image with reference {_display(ref)} was found but does not match the specified "
                             f"platform: wanted {self.want.format()}, actual: {have.format()}", str(ref))
        diff_ids = tuple(config.rootfs.diff_ids)
        if len(diff_ids) != len(manifest.layers):
            raise ImageError(f"{_display(ref)}: the manifest has {len(manifest.layers)} layers but the config lists "
                             f"{len(diff_ids)} diff_ids", manifest_digest)
        for layer in manifest.layers:
            if not mt.is_layer(layer.media_type):
                raise ImageError(f"{_display(ref)}: {layer.media_type} is not a layer media type", layer.digest)
            if not mt.is_distributable(layer.media_type) or layer.urls:
                raise ImageError(f"{_display(ref)}: layer {layer.digest} is a foreign (non-distributable) layer; "
                                 "pulling those is not supported", layer.digest)
        previous = self._tag_target()
        with self.store.lease("pull") as lease:
            try:
                downloaded = self._layers(manifest.layers, diff_ids)
                config_info = self.store.put_blob(config_data, BlobInfo(manifest.config.digest, len(config_data)))
                manifest_info = self.store.put_blob(manifest_data, BlobInfo(manifest_digest, len(manifest_data)))
                image_id = self._record(config, diff_ids, manifest_info, top, have)
                assert image_id == config_info.digest
                tagged = None
                if ref.tag:
                    from ..images.service import tag_image

                    tagged = tag_image(self.store, image_id, str(ref))
            except BaseException:
                self.cancel.set()
                lease.release()
                if self.cleanup:
                    _collect(self.store)
                raise
        self.progress.line(f"Digest: {top}")
        fresh = downloaded or previous != image_id
        what = ref.familiar
        self.progress.line(f"Status: {'Downloaded newer image' if fresh else 'Image is up to date'} for {what}")
        return PullResult(image_id, _display(ref), top, manifest_digest, tagged, downloaded, have.format())

    def _tag_target(self) -> str | None:
        return self.store.resolve(str(self.ref)) if self.ref.tag else None

    def _record(self, config, diff_ids, manifest_info: BlobInfo, top: str, have) -> str:
        """The image record: the config, the layers, the manifest as served, where it came from."""
        from ..images.service import store_config

        old = dict(self.store.get_image(config.digest).meta) if self.store.has_image(config.digest) else {}
        meta = dict(old)
        meta.setdefault("source", "registry")
        location = {"registry": self.reg.host, "repository": self.repo}
        meta["locations"] = _merged(old.get("locations"), location)
        meta["repo_digests"] = sorted(set(old.get("repo_digests") or []) | {f"{self.ref.name}@{top}"})
        meta["platform"] = have.format()
        return store_config(self.store, config, diff_ids, manifest=manifest_info, meta=meta)

    def _layers(self, layers, diff_ids) -> bool:
        """Download and store every layer not stored yet (several at once); True if any was downloaded."""
        todo = []
        for descriptor, diff_id in zip(layers, diff_ids):
            if self._have_layer(descriptor, diff_id):
                self.progress.done(descriptor.digest, "Already exists")
            else:
                todo.append((descriptor, diff_id))
        if not todo:
            return False
        seen: dict[str, tuple] = {}
        for descriptor, diff_id in todo:
            seen.setdefault(descriptor.digest, (descriptor, diff_id))   # one blob listed twice: fetched once
        jobs = list(seen.values())
        run_all(lambda job: self._fetch_layer(*job), jobs, workers=WORKERS, cancel=self.cancel, name="pybuild-pull")
        return True

    def _have_layer(self, descriptor, diff_id: str) -> bool:
        """The layer is stored (as this blob, or built or loaded here: docker's "Already exists")."""
        return self.store.has_layer(diff_id)

    def _fetch_layer(self, descriptor, diff_id: str) -> None:
        from ..images.layers import store_layer_blob

        if self.cancel.is_set():
            raise Cancelled()
        compression = mt.layer_compression(descriptor.media_type) or "none"
        expected = BlobInfo(descriptor.digest, descriptor.size)
        if self.store.has_blob(descriptor.digest):     # the blob is here, its layer record is not
            with self.store.open_blob(descriptor.digest) as blob:
                got, _, _ = store_layer_blob(self.store, blob, expected=expected, compression=compression,
                                             snapshot=False)
        else:
            from cache.errors import DigestMismatch

            self.progress.start(descriptor.digest, descriptor.size, "Downloading")
            with self.reg.open_blob(self.repo, descriptor.digest) as stream:
                counted = _Counted(stream, self, descriptor.digest)
                try:
                    got, _, _ = store_layer_blob(self.store, counted, expected=expected, compression=compression,
                                                 snapshot=False)
                except DigestMismatch as err:
                    raise self._mismatch(descriptor, str(err)) from None
                except LayerError as err:
                    # bytes that do not even decompress: if they are not what the digest names, say that
                    actual = counted.drain(descriptor.size)
                    if actual != descriptor.digest:
                        raise self._mismatch(descriptor, f"they hash to {actual}") from None
                    raise LayerError(f"{_display(self.ref)}: layer {descriptor.digest}: {err.message}") from None
        if got != diff_id:
            raise ImageError(f"{_display(self.ref)}: layer {descriptor.digest} unpacks to {got}, but the image config "
                             f"says {diff_id}", descriptor.digest)
        self.progress.done(descriptor.digest, "Pull complete")


    def _mismatch(self, descriptor, detail: str) -> BlobDigestMismatch:
        return BlobDigestMismatch(f"blob {descriptor.digest} from {self.reg.host}/{self.repo}: the content received "
                                  f"does not match its digest ({detail}); nothing was stored", self.reg.host)


class _Counted:
    """A registry stream that reports progress, hashes what it served, and stops when another download failed."""

    def __init__(self, stream, pull: _Pull, digest: str):
        import hashlib

        self._stream = stream
        self._pull = pull
        self._digest = digest
        self._hash = hashlib.sha256()
        self._size = 0

    def read(self, size: int = -1) -> bytes:
        if self._pull.cancel.is_set():
            raise Cancelled()
        data = self._stream.read(_READ if size is None or size < 0 else size)
        if data:
            self._hash.update(data)
            self._size += len(data)
            self._pull.progress.advance(self._digest, len(data))
        return data

    def drain(self, limit: int) -> str:
        """The digest of everything the blob holds (read to its end, at most ``limit`` bytes plus one read)."""
        while self._size <= limit and self.read(_READ):
            pass
        return "sha256:" + self._hash.hexdigest()

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)


def _merged(existing, location: dict) -> list:
    out = [dict(x) for x in existing or [] if isinstance(x, dict)]
    if location not in out:
        out.append(location)
    return out


def _collect(store) -> None:
    """After a failed pull: remove what it stored and nothing else reaches (best effort, bounded wait)."""
    from cache.errors import StoreError

    try:
        store.gc(timeout=10)
    except (StoreError, OSError):
        pass
