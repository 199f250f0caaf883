"""Content descriptors: what a manifest or index says about a blob it points at.

A descriptor (``mediaType``, ``digest``, ``size``, ``urls``, ``annotations``, ``platform``,
``artifactType``) is the only way one OCI object refers to another. Fields this model does not
know (``data``, Docker's CPU ``features`` on a platform, future ones) are kept in ``extra`` /
``platform_extra`` and written back, so a descriptor read and re-written loses nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ..errors import ImageError
from .canonical import EMPTY, FrozenMap, freeze
from .digest import parse_digest, sha256_digest
from .mediatypes import ANNOTATION_REFERENCE_TYPE, ATTESTATION_MANIFEST
from .platform import Platform

__all__ = ["Descriptor", "descriptor_for", "platform_from_dict", "platform_to_dict", "string_map",
           "string_list", "require"]

_MAX_SIZE = 2**63 - 1
_DESCRIPTOR_KEYS = frozenset(("mediaType", "digest", "size", "urls", "annotations", "platform", "artifactType"))
_PLATFORM_KEYS = frozenset(("architecture", "os", "os.version", "os.features", "variant"))


@dataclass(frozen=True)
class Descriptor:
    """A pointer to a blob; ``platform`` is set on index entries."""

    media_type: str
    digest: str
    size: int
    urls: tuple = ()
    annotations: FrozenMap = EMPTY
    platform: Platform | None = None
    artifact_type: str = ""
    extra: FrozenMap = EMPTY            # unknown descriptor fields, verbatim
    platform_extra: FrozenMap = field(default=EMPTY)  # unknown platform fields (Docker's "features")

    def __post_init__(self):
        parse_digest(self.digest)
        if isinstance(self.size, bool) or not isinstance(self.size, int) or not 0 <= self.size <= _MAX_SIZE:
            raise ImageError(f"invalid descriptor size {self.size!r} for {self.digest}", self.digest)
        if not isinstance(self.annotations, FrozenMap):
            object.__setattr__(self, "annotations", FrozenMap(self.annotations))
        if not isinstance(self.urls, tuple):
            object.__setattr__(self, "urls", tuple(self.urls))

    @property
    def is_attestation(self) -> bool:
        """A BuildKit attestation (SBOM/provenance) manifest: never an image to run."""
        return self.annotations.get(ANNOTATION_REFERENCE_TYPE) == ATTESTATION_MANIFEST

    def to_dict(self) -> dict:
        """The JSON object (Go's ``omitempty`` rules), unknown fields included."""
        out = dict(self.extra)
        out.update(mediaType=self.media_type, digest=self.digest, size=self.size)
        if self.urls:
            out["urls"] = list(self.urls)
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.platform is not None:
            out["platform"] = platform_to_dict(self.platform, self.platform_extra)
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        return out

    @classmethod
    def from_dict(cls, obj, where: str = "descriptor") -> "Descriptor":
        """Read a descriptor object; ImageError names ``where`` (e.g. ``layers[2]``) when invalid."""
        obj = freeze(obj)
        if not isinstance(obj, Mapping):
            raise ImageError(f"{where}: expected an object, got {_json_type(obj)}")
        media_type = require(obj, "mediaType", str, where)
        digest = require(obj, "digest", str, where)
        size = obj.get("size")
        if isinstance(size, bool) or not isinstance(size, int):
            raise ImageError(f"{where}: size must be an integer, got {_json_type(size)}", digest)
        try:
            parse_digest(digest)
        except ImageError as err:
            raise ImageError(f"{where}: {err.message}", digest) from None
        platform, platform_extra = None, EMPTY
        if obj.get("platform") is not None:
            platform, platform_extra = platform_from_dict(obj["platform"], f"{where}.platform")
        return cls(
            media_type=media_type, digest=digest, size=size,
            urls=string_list(obj.get("urls"), f"{where}.urls"),
            annotations=string_map(obj.get("annotations"), f"{where}.annotations"),
            platform=platform, artifact_type=_optional_str(obj, "artifactType", where),
            extra=FrozenMap((k, freeze(v)) for k, v in obj.items() if k not in _DESCRIPTOR_KEYS),
            platform_extra=platform_extra,
        )


def descriptor_for(media_type: str, data: bytes, **fields) -> Descriptor:
    """The descriptor of ``data`` (sha256 digest and size computed here)."""
    return Descriptor(media_type, sha256_digest(data), len(data), **fields)


def platform_to_dict(platform: Platform, extra: Mapping = EMPTY) -> dict:
    out = dict(extra)
    out.update(architecture=platform.architecture, os=platform.os)
    if platform.os_version:
        out["os.version"] = platform.os_version
    if platform.os_features:
        out["os.features"] = list(platform.os_features)
    if platform.variant:
        out["variant"] = platform.variant
    return out


def platform_from_dict(obj, where: str = "platform") -> tuple[Platform, FrozenMap]:
    """A platform object as written (not normalized) and its unknown fields."""
    if not isinstance(obj, Mapping):
        raise ImageError(f"{where}: expected an object, got {_json_type(obj)}")
    platform = Platform(
        os=_optional_str(obj, "os", where), architecture=_optional_str(obj, "architecture", where),
        variant=_optional_str(obj, "variant", where), os_version=_optional_str(obj, "os.version", where),
        os_features=string_list(obj.get("os.features"), f"{where}.os.features"),
    )
    return platform, FrozenMap((k, freeze(v)) for k, v in obj.items() if k not in _PLATFORM_KEYS)


# -- small JSON readers shared by manifest, index and config ------------------------------------

def _json_type(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "an object"
    return "an array"


def require(obj: Mapping, key: str, kind: type, where: str):
    """``obj[key]``, which must be present and of JSON type ``kind`` (str, int, Mapping, tuple)."""
    if key not in obj or obj[key] is None:
        raise ImageError(f"{where}: missing required field {key!r}")
    value = obj[key]
    if (kind is int and isinstance(value, bool)) or not isinstance(value, kind):
        names = {str: "a string", int: "an integer", Mapping: "an object", tuple: "an array"}
        raise ImageError(f"{where}: {key} must be {names.get(kind, kind.__name__)}, got {_json_type(value)}")
    return value


def _optional_str(obj: Mapping, key: str, where: str) -> str:
    value = obj.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ImageError(f"{where}: {key} must be a string, got {_json_type(value)}")
    return value


def string_list(value, where: str) -> tuple:
    """A JSON array of strings (null or absent -> empty)."""
    if value is None:
        return ()
    if not isinstance(value, (tuple, list)) or not all(isinstance(v, str) for v in value):
        raise ImageError(f"{where}: expected an array of strings, got {_json_type(value)}")
    return tuple(value)


def string_map(value, where: str) -> FrozenMap:
    """A JSON object of strings (null or absent -> empty)."""
    if value is None:
        return EMPTY
    if not isinstance(value, Mapping) or not all(isinstance(v, str) for v in value.values()):
        raise ImageError(f"{where}: expected an object of strings, got {_json_type(value)}")
    return FrozenMap(value)
