"""Where ``--cache-from`` entries come from: an OCI image layout directory (``type=local``) or a
repository in a registry (``type=registry``, or an image carrying inline cache). Each source reads
a cache manifest (or an index's entry for the platform) into key -> (entry, source); small documents
are checked against their digests, layer blobs are opened only when a step needs them."""

from __future__ import annotations

import hashlib
import json
import os
from contextlib import contextmanager

from ..errors import PybuildError
from ..image import mediatypes as mt
from .cacheformat import CacheFormatError
from .cachespec import reference

SMALL = 16 << 20   # manifests and cache configs are read into memory; refuse anything bigger



class LayoutSource:
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
            data = fh.read(SMALL + 1)
        return _checked(data, digest, self.describe())

    def load(self, platform) -> dict:
        try:
            with open(os.path.join(self.path, "index.json"), "rb") as fh:
                index = json.loads(fh.read(SMALL))
        except FileNotFoundError:
            raise CacheMissing(f"{self.describe()} has no cache (no index.json)") from None
        except ValueError as err:
            raise CacheFormatError(f"{self.describe()}: index.json is not JSON: {err}") from None
        manifests = index.get("manifests") if isinstance(index, dict) else None
        if not isinstance(manifests, list) or not manifests:
            raise CacheMissing(f"{self.describe()} has no cache (an empty index.json)")
        from .cacheformat import CACHE_CONFIG

        ours = [m for m in manifests if isinstance(m, dict) and m.get("artifactType") == CACHE_CONFIG]
        chosen = (ours or manifests)[-1]
        if not isinstance(chosen, dict) or not isinstance(chosen.get("digest"), str):
            raise CacheFormatError(f"{self.describe()}: index.json has no manifest digest")
        return _entries_from(self, self.read_blob(chosen["digest"]), chosen.get("mediaType", ""), platform)


class RegistrySource:
    """A repository in a registry (``type=registry``, or an image carrying inline cache)."""

    def __init__(self, ref: str):
        from ..registry.client import Registry

        self.reference = reference(ref)
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
        return self.registry.fetch_blob(self.repo, digest, limit=SMALL)   # checked against its digest

    def load(self, platform) -> dict:
        from ..registry.errors import ManifestNotFound

        tag = self.reference.digest or self.reference.tag or "latest"
        try:
            fetched = self.registry.get_manifest(self.repo, tag)
        except ManifestNotFound:
            raise CacheMissing(f"{self.describe()} not found") from None
        return _entries_from(self, fetched.data, fetched.media_type, platform, fetch_manifest=self._manifest)

    def _manifest(self, digest: str) -> tuple[bytes, str]:
        fetched = self.registry.get_manifest(self.repo, digest)
        return fetched.data, fetched.media_type


class CacheMissing(PybuildError):
    """No cache at that place (a warning: the first build has nothing to import)."""


def _checked(data: bytes, digest: str, where: str) -> bytes:
    if len(data) > SMALL:
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
