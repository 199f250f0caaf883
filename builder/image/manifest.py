"""Image manifests (OCI ``manifest.md``, Docker image manifest v2 schema 2) and the image invariants.

Both families share one shape (``schemaVersion`` 2, a config descriptor, layer descriptors) and
differ in media types; ``Manifest.media_type`` says which family a manifest is in, and
``to_oci``/``to_docker`` convert between them (refusing OCI-only content, never dropping it).
``validate_image`` checks a config and manifest against each other, as the architecture notes ask.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from ..errors import ImageError
from . import mediatypes as mt
from .canonical import EMPTY, Document, FrozenMap, freeze, load_json
from .config import ImageConfig, parse_timestamp
from .descriptor import Descriptor, require, string_map
from .digest import digest_problem
from .platform import Platform

__all__ = ["Manifest", "parse_manifest", "build_manifest", "image_problems", "validate_image"]

_KEYS = frozenset(("schemaVersion", "mediaType", "artifactType", "config", "layers", "subject", "annotations"))


@dataclass(frozen=True)
class Manifest(Document):
    """An image manifest; ``media_type`` is "" only for an OCI manifest read without one."""

    config: Descriptor
    layers: tuple = ()
    media_type: str = mt.OCI_MANIFEST
    schema_version: int = 2
    annotations: FrozenMap = EMPTY
    subject: Descriptor | None = None
    artifact_type: str = ""
    extra: FrozenMap = EMPTY

    def __post_init__(self):
        if not isinstance(self.layers, tuple):
            object.__setattr__(self, "layers", tuple(self.layers))
        if not isinstance(self.annotations, FrozenMap):
            object.__setattr__(self, "annotations", FrozenMap(self.annotations))

    @property
    def is_docker(self) -> bool:
        return self.media_type == mt.DOCKER_MANIFEST

    @property
    def kind(self) -> str:
        """The manifest's media type as served: Docker's, or OCI's (also when the field is absent)."""
        return self.media_type or mt.OCI_MANIFEST

    def descriptor(self, platform: Platform | None = None, **fields) -> Descriptor:
        """The descriptor that points at this manifest (for an index or a layout's index.json)."""
        return Descriptor(self.kind, self.digest, self.size, platform=platform, **fields)

    def to_dict(self) -> dict:
        out = dict(self.extra)
        out["schemaVersion"] = self.schema_version
        if self.media_type:
            out["mediaType"] = self.media_type
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        out["config"] = self.config.to_dict()
        out["layers"] = [layer.to_dict() for layer in self.layers]
        if self.subject is not None:
            out["subject"] = self.subject.to_dict()
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        return out

    @classmethod
    def from_dict(cls, obj, media_type: str = "", where: str = "image manifest") -> "Manifest":
        """Read a manifest object; ``media_type`` is what the transport said, if anything."""
        obj = freeze(obj)
        if not isinstance(obj, Mapping):
            raise ImageError(f"invalid {where}: expected a JSON object")
        version = obj.get("schemaVersion")
        declared = obj.get("mediaType") or ""
        if not isinstance(declared, str):
            raise ImageError(f"invalid {where}: mediaType must be a string")
        if version == 1 or mt.is_schema1(declared) or mt.is_schema1(media_type):
            raise ImageError(f"unsupported {where}: Docker schema 1 manifests are deprecated and not supported")
        if isinstance(version, bool) or version != 2:
            raise ImageError(f"unsupported {where}: schemaVersion {version!r}, expected 2")
        kind = declared or media_type
        if mt.is_index(kind) or ("manifests" in obj and "config" not in obj):
            raise ImageError(f"invalid {where}: this is an image index, not an image manifest")
        if declared and mt.is_manifest(media_type) and declared != media_type:
            raise ImageError(f"invalid {where}: mediaType {declared} does not match {media_type}")
        layers = require(obj, "layers", tuple, where)
        subject = obj.get("subject")
        return cls(
            config=Descriptor.from_dict(require(obj, "config", Mapping, where), "config"),
            layers=tuple(Descriptor.from_dict(d, f"layers[{i}]") for i, d in enumerate(layers)),
            media_type=declared or (media_type if mt.is_manifest(media_type) else ""), schema_version=version,
            annotations=string_map(obj.get("annotations"), "annotations"),
            subject=Descriptor.from_dict(subject, "subject") if subject is not None else None,
            artifact_type=_str(obj, "artifactType", where),
            extra=FrozenMap((k, freeze(v)) for k, v in obj.items() if k not in _KEYS),
        )

    # -- conversions and changes ------------------------------------------------------------------

    def to_oci(self) -> "Manifest":
        """The same image with OCI media types (config, layers, manifest)."""
        if not self.is_docker:
            return self
        return replace(self, media_type=mt.OCI_MANIFEST, config=_retype(self.config, mt.to_oci),
                       layers=tuple(_retype(layer, mt.to_oci) for layer in self.layers))

    def to_docker(self) -> "Manifest":
        """The same image with Docker schema 2 media types; ImageError if something would be lost."""
        if self.is_docker:
            return self
        lost = [name for name, value in (("annotations", self.annotations), ("subject", self.subject),
                                         ("artifactType", self.artifact_type),
                                         ("config annotations", self.config.annotations),
                                         ("config urls", self.config.urls)) if value]
        lost += [f"layers[{i}] annotations" for i, layer in enumerate(self.layers) if layer.annotations]
        if lost:
            raise ImageError(f"Docker schema 2 manifests cannot carry {', '.join(lost)}; use OCI media types",
                             self.digest)
        return replace(self, media_type=mt.DOCKER_MANIFEST, config=_retype(self.config, mt.to_docker),
                       layers=tuple(_retype(layer, mt.to_docker) for layer in self.layers))

    def with_layers(self, layers: Iterable[Descriptor]) -> "Manifest":
        return replace(self, layers=tuple(layers))


def _retype(descriptor: Descriptor, convert) -> Descriptor:
    return replace(descriptor, media_type=convert(descriptor.media_type))


def _str(obj: Mapping, key: str, where: str) -> str:
    value = obj.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ImageError(f"invalid {where}: {key} must be a string")
    return value


def parse_manifest(data: bytes, media_type: str = "", subject: str | None = None) -> Manifest:
    """Read an image manifest (either family); the value keeps ``data`` as its stored form."""
    obj = load_json(data, "image manifest", subject)
    try:
        return Manifest.from_dict(obj, media_type)._keep_raw(data)
    except ImageError as err:
        if subject is not None:
            err.subject = subject
        raise


def build_manifest(config: ImageConfig, layers: Sequence[Descriptor], *, docker: bool = False,
                   annotations: Mapping | None = None) -> Manifest:
    """A new manifest for ``config`` (stored as ``config.to_bytes()``) and its layer blobs.

    The family (``docker`` or OCI) decides every media type, layers included.
    """
    manifest = Manifest(
        config=Descriptor(mt.OCI_CONFIG, config.digest, config.size),
        layers=tuple(_retype(layer, mt.to_oci) for layer in layers), media_type=mt.OCI_MANIFEST,
        annotations=FrozenMap(annotations or {}),
    )
    return manifest.to_docker() if docker else manifest


# -- invariants -----------------------------------------------------------------------------------

def _descriptor_problems(where: str, descriptor: Descriptor) -> list[str]:
    problem = digest_problem(descriptor.digest)
    return [f"{where}: digest {descriptor.digest!r}: {problem}"] if problem else []


def image_problems(config: ImageConfig, manifest: Manifest) -> list[str]:
    """Every way ``config`` and ``manifest`` break the image invariants (empty when they hold)."""
    problems: list[str] = []
    docker = manifest.is_docker
    family = "Docker schema 2" if docker else "OCI"
    if manifest.schema_version != 2:
        problems.append(f"manifest: schemaVersion is {manifest.schema_version}, expected 2")
    if manifest.media_type not in ("", mt.OCI_MANIFEST, mt.DOCKER_MANIFEST):
        problems.append(f"manifest: mediaType {manifest.media_type} is not an image manifest type")

    # The config: its descriptor matches its bytes and the manifest's family.
    problems += _descriptor_problems("config descriptor", manifest.config)
    want_config = mt.DOCKER_CONFIG if docker else mt.OCI_CONFIG
    if manifest.config.media_type != want_config:
        problems.append(f"config descriptor: mediaType {manifest.config.media_type} in a {family} manifest, "
                        f"expected {want_config}")
    if manifest.config.digest != config.digest:
        problems.append(f"config descriptor: digest {manifest.config.digest} but the config is {config.digest}")
    if manifest.config.size != config.size:
        problems.append(f"config descriptor: size {manifest.config.size} but the config has {config.size} bytes")

    # Layers: well-formed, of this family's layer types.
    for i, layer in enumerate(manifest.layers):
        problems += _descriptor_problems(f"layers[{i}]", layer)
        if not mt.is_layer(layer.media_type):
            problems.append(f"layers[{i}]: {layer.media_type} is not a layer media type")
        elif mt.is_docker(layer.media_type) != docker:
            problems.append(f"layers[{i}]: {layer.media_type} in a {family} manifest")

    # The config itself: platform, rootfs, history, timestamps.
    if not config.os or not config.architecture:
        problems.append("config: os and architecture are required")
    if config.rootfs.type != "layers":
        problems.append(f"config: rootfs.type is {config.rootfs.type!r}, expected 'layers'")
    for i, diff_id in enumerate(config.rootfs.diff_ids):
        problem = digest_problem(diff_id)
        if problem:
            problems.append(f"config: rootfs.diff_ids[{i}] {diff_id!r}: {problem}")
    n_layers, n_diff_ids = len(manifest.layers), len(config.rootfs.diff_ids)
    if n_layers != n_diff_ids:
        problems.append(f"manifest has {n_layers} layers but the config has {n_diff_ids} diff_ids")
    if config.history:
        with_layer = sum(1 for h in config.history if not h.empty_layer)
        if with_layer != n_diff_ids:
            problems.append(f"config has {with_layer} non-empty history entries but {n_diff_ids} diff_ids")
    stamps = [("config: created", config.created)]
    stamps += [(f"config: history[{i}].created", h.created) for i, h in enumerate(config.history)]
    for where, stamp in stamps:
        if stamp is not None:
            try:
                parse_timestamp(stamp)
            except ImageError as err:
                problems.append(f"{where}: {err.message}")
    return problems


def validate_image(config: ImageConfig, manifest: Manifest) -> None:
    """Raise :class:`ImageError` listing every broken invariant of this config + manifest."""
    problems = image_problems(config, manifest)
    if problems:
        raise ImageError("invalid image:\n  " + "\n  ".join(problems), manifest.digest)
