"""pybuild's remote build-cache format: an OCI artifact mapping step cache keys to layer blobs.

BuildKit's cache format cannot be shared (its keys come from its own graph), so ours is the
smallest thing that carries ``cachekey`` keys across machines:

* an OCI image manifest (``artifactType`` and config media type ``CACHE_CONFIG``) whose layers are
  the gzip layer blobs, each annotated with its ``diff_id``;
* its config, a JSON document ``{"schema": "pybuild.cache.v1", "entries": [...]}``, one entry per
  step: ``{"key", "diff_id" (null: the step changed no file), "layer" (index into the manifest's
  layers, or null), "created" (when the layer was made, seconds: the image history's date)}``.

Inline (``--cache-to type=inline``): the same entries without ``layer`` in the image config under
``INLINE_KEY``; the image's own layers are the blobs, found by diff_id through ``rootfs.diff_ids``.

Keys are sha256 digests of what a step depends on (never a path, a secret or a time), so the
artifact holds nothing a registry reader should not see besides the layers themselves.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ..errors import PybuildError
from ..image import mediatypes as mt
from ..image.descriptor import Descriptor, descriptor_for

CACHE_CONFIG = "application/vnd.pybuild.cache.config.v1+json"
SCHEMA = "pybuild.cache.v1"
INLINE_KEY = "pybuild.cache.v1"
DIFF_ID_ANNOTATION = "dev.pybuild.cache.diff_id"
_SHA256 = re.compile(r"sha256:[0-9a-f]{64}\Z")


class CacheFormatError(PybuildError):
    """A cache manifest or config that is not pybuild's cache format (or is damaged)."""


@dataclass(frozen=True)
class CacheRecord:
    """One step's cache entry as the build knows it: its key, its layer (None: empty diff), when made."""

    key: str
    diff_id: str | None
    created: float


@dataclass(frozen=True)
class RemoteEntry:
    """A cache entry read from elsewhere; ``layer`` is the blob to fetch (None for an empty diff)."""

    key: str
    diff_id: str | None
    created: float
    layer: Descriptor | None = None


def _digest(value, what: str) -> str:
    if not isinstance(value, str) or not _SHA256.match(value):
        raise CacheFormatError(f"cache {what} is not a sha256 digest: {value!r}")
    return value


def _created(value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(float(value)):
        raise CacheFormatError(f"cache entry time is not a number: {value!r}")
    return float(value)


def unique(records: Iterable[CacheRecord]) -> list[CacheRecord]:
    """Records in order, each key once (a stage built twice, a --link layer's second key)."""
    seen: dict[str, CacheRecord] = {}
    for record in records:
        seen.setdefault(record.key, record)
    return list(seen.values())


# -- the artifact -------------------------------------------------------------------------------------


def encode_config(records: Iterable[CacheRecord], layer_index: Mapping[str, int]) -> bytes:
    """The config blob: entries in order, ``layer_index`` maps a diff_id to its manifest layer."""
    entries = []
    for r in unique(records):
        entries.append({"key": r.key, "diff_id": r.diff_id, "created": r.created,
                        "layer": layer_index[r.diff_id] if r.diff_id else None})
    return json.dumps({"schema": SCHEMA, "entries": entries}, sort_keys=True, separators=(",", ":")).encode()


def build_artifact(records: Iterable[CacheRecord], blobs: Mapping[str, tuple]) -> tuple[bytes, bytes, list]:
    """(manifest bytes, config bytes, layer descriptors) for ``records``; ``blobs`` maps each
    diff_id to its gzip blob's (digest, size)."""
    from ..image.canonical import canonical_json

    records = unique(records)
    layers: list[Descriptor] = []
    index: dict[str, int] = {}
    for r in records:
        if r.diff_id and r.diff_id not in index:
            digest, size = blobs[r.diff_id]
            index[r.diff_id] = len(layers)
            layers.append(Descriptor(mt.OCI_LAYER_GZIP, digest, size, annotations={DIFF_ID_ANNOTATION: r.diff_id}))
    config = encode_config(records, index)
    manifest = {"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "artifactType": CACHE_CONFIG,
                "config": descriptor_for(CACHE_CONFIG, config).to_dict(),
                "layers": [d.to_dict() for d in layers]}
    return canonical_json(manifest), config, layers


def is_cache_manifest(manifest) -> bool:
    return manifest.artifact_type == CACHE_CONFIG or manifest.config.media_type == CACHE_CONFIG


def read_artifact(manifest, config: bytes) -> dict[str, RemoteEntry]:
    """key -> RemoteEntry from a parsed cache manifest and its config blob's bytes."""
    try:
        document = json.loads(config)
    except ValueError as err:
        raise CacheFormatError(f"cache config is not JSON: {err}") from None
    if not isinstance(document, dict) or document.get("schema") != SCHEMA:
        raise CacheFormatError(f"cache config is not {SCHEMA}")
    entries = document.get("entries")
    if not isinstance(entries, list):
        raise CacheFormatError("cache config has no entries list")
    out: dict[str, RemoteEntry] = {}
    for item in entries:
        if not isinstance(item, dict):
            raise CacheFormatError("cache entry is not an object")
        key = _digest(item.get("key"), "key")
        diff_id = item.get("diff_id")
        layer = None
        if diff_id is not None:
            _digest(diff_id, "diff_id")
            position = item.get("layer")
            if isinstance(position, bool) or not isinstance(position, int) \
                    or not 0 <= position < len(manifest.layers):
                raise CacheFormatError(f"cache entry {key}: layer {position!r} is not in the manifest")
            layer = manifest.layers[position]
        out.setdefault(key, RemoteEntry(key, diff_id, _created(item.get("created")), layer))
    return out


# -- inline (in an image config) ------------------------------------------------------------------------


def inline_value(records: Iterable[CacheRecord]) -> dict:
    """What ``--cache-to type=inline`` puts under ``INLINE_KEY`` in the image config."""
    return {"entries": [{"key": r.key, "diff_id": r.diff_id, "created": r.created} for r in unique(records)]}


def read_inline(config, manifest) -> dict[str, RemoteEntry]:
    """key -> RemoteEntry from an image config (``ImageConfig``) carrying inline cache and the
    image's manifest (its layers are the blobs, in ``rootfs.diff_ids`` order). {} when none."""
    from ..image.canonical import thaw

    value = config.extra.get(INLINE_KEY)
    if value is None:
        return {}
    value = thaw(value)
    entries = value.get("entries") if isinstance(value, dict) else None
    if not isinstance(entries, list):
        raise CacheFormatError(f"image config {INLINE_KEY} has no entries list")
    diff_ids = list(config.rootfs.diff_ids)
    if len(diff_ids) != len(manifest.layers):
        raise CacheFormatError("image manifest and config disagree on the number of layers")
    layer_of = {d: manifest.layers[i] for i, d in enumerate(diff_ids)}
    out: dict[str, RemoteEntry] = {}
    for item in entries:
        if not isinstance(item, dict):
            raise CacheFormatError("inline cache entry is not an object")
        key = _digest(item.get("key"), "key")
        diff_id = item.get("diff_id")
        if diff_id is not None and diff_id not in layer_of:
            continue  # not a layer of this image: nothing to fetch it from
        out.setdefault(key, RemoteEntry(key, diff_id, _created(item.get("created")),
                                        layer_of.get(diff_id) if diff_id else None))
    return out
