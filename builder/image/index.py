"""Image indexes (OCI ``image-index.md``) and Docker manifest lists, and platform selection.

Selection follows containerd's ``images.Manifest`` with ``platforms.Only``: entries whose platform
this target can run, best fallback first (arm/v7 before arm/v6, amd64 before 386), ties kept in
index order; an entry without a platform comes last (its config decides; the caller checks it).
BuildKit's attestation manifests (``unknown/unknown``, annotated ``attestation-manifest``) and
entries that are not images are never selected.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from ..errors import ImageError
from . import mediatypes as mt
from .canonical import EMPTY, Document, FrozenMap, freeze, load_json
from .descriptor import Descriptor, require, string_map
from .manifest import Manifest
from .platform import Platform, only

__all__ = ["ImageIndex", "parse_index", "parse_document", "build_index", "matching_manifests", "select_manifest"]

_KEYS = frozenset(("schemaVersion", "mediaType", "artifactType", "manifests", "subject", "annotations"))
_SELECTABLE = mt.MANIFEST_TYPES | mt.INDEX_TYPES


@dataclass(frozen=True)
class ImageIndex(Document):
    """An OCI image index or a Docker manifest list (``media_type`` says which)."""

    manifests: tuple = ()
    media_type: str = mt.OCI_INDEX
    schema_version: int = 2
    annotations: FrozenMap = EMPTY
    subject: Descriptor | None = None
    artifact_type: str = ""
    extra: FrozenMap = EMPTY

    def __post_init__(self):
        if not isinstance(self.manifests, tuple):
            object.__setattr__(self, "manifests", tuple(self.manifests))
        if not isinstance(self.annotations, FrozenMap):
            object.__setattr__(self, "annotations", FrozenMap(self.annotations))

    @property
    def is_docker(self) -> bool:
        return self.media_type == mt.DOCKER_MANIFEST_LIST

    @property
    def kind(self) -> str:
        return self.media_type or mt.OCI_INDEX

    def images(self) -> tuple:
        """The entries that are images to run (manifests or nested indexes, no attestations)."""
        return tuple(d for d in self.manifests if d.media_type in _SELECTABLE and not d.is_attestation
                     and not (d.platform is not None and d.platform.os == d.platform.architecture == "unknown"))

    def platforms(self) -> tuple:
        """The platforms of the image entries, in index order."""
        return tuple(d.platform for d in self.images() if d.platform is not None)

    def descriptor(self, **fields) -> Descriptor:
        return Descriptor(self.kind, self.digest, self.size, **fields)

    def to_dict(self) -> dict:
        out = dict(self.extra)
        out["schemaVersion"] = self.schema_version
        if self.media_type:
            out["mediaType"] = self.media_type
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        out["manifests"] = [d.to_dict() for d in self.manifests]
        if self.subject is not None:
            out["subject"] = self.subject.to_dict()
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        return out

    @classmethod
    def from_dict(cls, obj, media_type: str = "", where: str = "image index") -> "ImageIndex":
        obj = freeze(obj)
        if not isinstance(obj, Mapping):
            raise ImageError(f"invalid {where}: expected a JSON object")
        version = obj.get("schemaVersion")
        if isinstance(version, bool) or version != 2:
            raise ImageError(f"unsupported {where}: schemaVersion {version!r}, expected 2")
        declared = obj.get("mediaType") or ""
        if not isinstance(declared, str):
            raise ImageError(f"invalid {where}: mediaType must be a string")
        if mt.is_manifest(declared or media_type) or "config" in obj:
            raise ImageError(f"invalid {where}: this is an image manifest, not an index")
        if declared and mt.is_index(media_type) and declared != media_type:
            raise ImageError(f"invalid {where}: mediaType {declared} does not match {media_type}")
        entries = require(obj, "manifests", tuple, where)
        subject = obj.get("subject")
        artifact_type = obj.get("artifactType") or ""
        if not isinstance(artifact_type, str):
            raise ImageError(f"invalid {where}: artifactType must be a string")
        return cls(
            manifests=tuple(Descriptor.from_dict(d, f"manifests[{i}]") for i, d in enumerate(entries)),
            media_type=declared or (media_type if mt.is_index(media_type) else ""), schema_version=version,
            annotations=string_map(obj.get("annotations"), "annotations"),
            subject=Descriptor.from_dict(subject, "subject") if subject is not None else None,
            artifact_type=artifact_type,
            extra=FrozenMap((k, freeze(v)) for k, v in obj.items() if k not in _KEYS),
        )

    def to_oci(self) -> "ImageIndex":
        if not self.is_docker:
            return self
        return replace(self, media_type=mt.OCI_INDEX,
                       manifests=tuple(replace(d, media_type=mt.to_oci(d.media_type)) for d in self.manifests))

    def to_docker(self) -> "ImageIndex":
        """A Docker manifest list; ImageError if OCI-only content (annotations, urls) would be lost."""
        if self.is_docker:
            return self
        lost = [name for name, value in (("annotations", self.annotations), ("subject", self.subject),
                                         ("artifactType", self.artifact_type)) if value]
        lost += [f"manifests[{i}] annotations" for i, d in enumerate(self.manifests) if d.annotations]
        lost += [f"manifests[{i}] urls" for i, d in enumerate(self.manifests) if d.urls]
        if lost:
            raise ImageError(f"Docker manifest lists cannot carry {', '.join(lost)}; use OCI media types", self.digest)
        return replace(self, media_type=mt.DOCKER_MANIFEST_LIST,
                       manifests=tuple(replace(d, media_type=mt.to_docker(d.media_type)) for d in self.manifests))


def parse_index(data: bytes, media_type: str = "", subject: str | None = None) -> ImageIndex:
    """Read an OCI index or Docker manifest list; the value keeps ``data`` as its stored form."""
    obj = load_json(data, "image index", subject)
    try:
        return ImageIndex.from_dict(obj, media_type)._keep_raw(data)
    except ImageError as err:
        if subject is not None:
            err.subject = subject
        raise


def parse_document(data: bytes, media_type: str = "", subject: str | None = None) -> Manifest | ImageIndex:
    """A manifest or an index, told apart by ``media_type``, the ``mediaType`` field, or the shape."""
    obj = load_json(data, "manifest", subject)
    declared = obj.get("mediaType") if isinstance(obj, Mapping) else None
    kind = declared if isinstance(declared, str) and declared else media_type
    is_index = mt.is_index(kind) or (not mt.is_manifest(kind) and isinstance(obj, Mapping)
                                     and "manifests" in obj and "config" not in obj)
    try:
        value = ImageIndex.from_dict(obj, media_type) if is_index else Manifest.from_dict(obj, media_type)
    except ImageError as err:
        if subject is not None:
            err.subject = subject
        raise
    return value._keep_raw(data)


def build_index(entries: Iterable[Descriptor], *, docker: bool = False,
                annotations: Mapping | None = None) -> ImageIndex:
    """A new index of ``entries`` (``Manifest.descriptor(platform)`` gives them)."""
    index = ImageIndex(manifests=tuple(entries), annotations=FrozenMap(annotations or {}))
    return index.to_docker() if docker else index


# -- selection --------------------------------------------------------------------------------------

def matching_manifests(index: ImageIndex, platform: Platform) -> tuple:
    """The image entries ``platform`` can run, best first; platform-less entries last."""
    matcher = only(platform)
    ranked = []
    unplaced = []
    for position, entry in enumerate(index.images()):
        if entry.platform is None:
            unplaced.append(entry)
        elif matcher.match(entry.platform):
            ranked.append((matcher.sort_key(entry.platform), position, entry))
    ranked.sort(key=lambda item: (item[0], item[1]))
    return tuple(entry for _, _, entry in ranked) + tuple(unplaced)


def select_manifest(index: ImageIndex, platform: Platform) -> Descriptor:
    """The best entry for ``platform``; ImageError listing the platforms the index offers if none."""
    found = matching_manifests(index, platform)
    if found:
        return found[0]
    offered = ", ".join(p.format_all() for p in index.platforms()) or "none"
    raise ImageError(f"no matching manifest for {platform.format_all()} in the manifest list entries "
                     f"(available: {offered})", platform.format_all())
