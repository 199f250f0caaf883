"""Media types of OCI and Docker schema 2 images, and the mapping between the two families.

An image is written in one family throughout: OCI manifests point at OCI configs and
``application/vnd.oci.image.layer.v1.tar(+gzip|+zstd)`` layers, Docker schema 2 manifests at Docker
configs and ``application/vnd.docker.image.rootfs.diff.tar.gzip`` layers. Reading accepts both;
``to_oci``/``to_docker`` translate one type, refusing what the other family cannot express.
"""

from __future__ import annotations

from ..errors import ImageError

__all__ = [
    "OCI_MANIFEST", "OCI_INDEX", "OCI_CONFIG", "OCI_LAYER", "OCI_LAYER_GZIP", "OCI_LAYER_ZSTD",
    "OCI_LAYER_NONDIST", "OCI_LAYER_NONDIST_GZIP", "OCI_LAYER_NONDIST_ZSTD", "OCI_EMPTY", "OCI_DESCRIPTOR",
    "OCI_LAYOUT_HEADER", "DOCKER_MANIFEST", "DOCKER_MANIFEST_LIST", "DOCKER_CONFIG", "DOCKER_LAYER",
    "DOCKER_LAYER_GZIP", "DOCKER_LAYER_ZSTD", "DOCKER_FOREIGN_LAYER", "DOCKER_FOREIGN_LAYER_GZIP",
    "DOCKER_SCHEMA1_MANIFEST", "DOCKER_SCHEMA1_SIGNED_MANIFEST", "DOCKER_PLUGIN_CONFIG",
    "ANNOTATION_REFERENCE_TYPE", "ANNOTATION_REFERENCE_DIGEST", "ATTESTATION_MANIFEST", "ANNOTATION_REF_NAME",
    "ANNOTATION_CREATED", "ANNOTATION_BASE_NAME", "ANNOTATION_BASE_DIGEST",
    "MANIFEST_TYPES", "INDEX_TYPES", "CONFIG_TYPES", "LAYER_TYPES", "SCHEMA1_TYPES",
    "is_manifest", "is_index", "is_config", "is_layer", "is_docker", "is_oci", "is_schema1",
    "layer_compression", "is_distributable", "layer_media_type", "to_oci", "to_docker",
]

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
OCI_LAYER_NONDIST = "application/vnd.oci.image.layer.nondistributable.v1.tar"  # deprecated in OCI 1.1
OCI_LAYER_NONDIST_GZIP = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
OCI_LAYER_NONDIST_ZSTD = "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
OCI_DESCRIPTOR = "application/vnd.oci.descriptor.v1+json"
OCI_LAYOUT_HEADER = "application/vnd.oci.layout.header.v1+json"

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"  # uncompressed; containerd/BuildKit use it
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_LAYER_ZSTD = "application/vnd.docker.image.rootfs.diff.tar.zstd"  # BuildKit's; read only
DOCKER_FOREIGN_LAYER = "application/vnd.docker.image.rootfs.foreign.diff.tar"
DOCKER_FOREIGN_LAYER_GZIP = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
DOCKER_SCHEMA1_MANIFEST = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_SCHEMA1_SIGNED_MANIFEST = "application/vnd.docker.distribution.manifest.v1+prettyjws"
DOCKER_PLUGIN_CONFIG = "application/vnd.docker.plugin.v1+json"

# Annotations that steer selection and naming.
ANNOTATION_REFERENCE_TYPE = "vnd.docker.reference.type"      # "attestation-manifest" on BuildKit attestations
ANNOTATION_REFERENCE_DIGEST = "vnd.docker.reference.digest"  # the image an attestation describes
ATTESTATION_MANIFEST = "attestation-manifest"
ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"
ANNOTATION_CREATED = "org.opencontainers.image.created"
ANNOTATION_BASE_NAME = "org.opencontainers.image.base.name"
ANNOTATION_BASE_DIGEST = "org.opencontainers.image.base.digest"

MANIFEST_TYPES = frozenset((OCI_MANIFEST, DOCKER_MANIFEST))
INDEX_TYPES = frozenset((OCI_INDEX, DOCKER_MANIFEST_LIST))
CONFIG_TYPES = frozenset((OCI_CONFIG, DOCKER_CONFIG))
SCHEMA1_TYPES = frozenset((DOCKER_SCHEMA1_MANIFEST, DOCKER_SCHEMA1_SIGNED_MANIFEST))

# layer media type -> (compression, distributable, docker family)
_LAYERS = {
    OCI_LAYER: ("", True, False),
    OCI_LAYER_GZIP: ("gzip", True, False),
    OCI_LAYER_ZSTD: ("zstd", True, False),
    OCI_LAYER_NONDIST: ("", False, False),
    OCI_LAYER_NONDIST_GZIP: ("gzip", False, False),
    OCI_LAYER_NONDIST_ZSTD: ("zstd", False, False),
    DOCKER_LAYER: ("", True, True),
    DOCKER_LAYER_GZIP: ("gzip", True, True),
    DOCKER_LAYER_ZSTD: ("zstd", True, True),
    DOCKER_FOREIGN_LAYER: ("", False, True),
    DOCKER_FOREIGN_LAYER_GZIP: ("gzip", False, True),
}
LAYER_TYPES = frozenset(_LAYERS)
# The types each family *writes* for (compression, distributable); Docker writes no zstd and no
# uncompressed foreign layer (schema 2 defines neither).
_WRITE = {
    False: {(c, d): t for t, (c, d, docker) in _LAYERS.items() if not docker},
    True: {("", True): DOCKER_LAYER, ("gzip", True): DOCKER_LAYER_GZIP, ("gzip", False): DOCKER_FOREIGN_LAYER_GZIP},
}
_SWAP = {OCI_MANIFEST: DOCKER_MANIFEST, OCI_INDEX: DOCKER_MANIFEST_LIST, OCI_CONFIG: DOCKER_CONFIG}


def is_manifest(media_type: str) -> bool:
    return media_type in MANIFEST_TYPES


def is_index(media_type: str) -> bool:
    return media_type in INDEX_TYPES


def is_config(media_type: str) -> bool:
    return media_type in CONFIG_TYPES


def is_layer(media_type: str) -> bool:
    return media_type in _LAYERS


def is_schema1(media_type: str) -> bool:
    return media_type in SCHEMA1_TYPES


def is_docker(media_type: str) -> bool:
    """A Docker-family type (``application/vnd.docker.``)."""
    return media_type.startswith("application/vnd.docker.")


def is_oci(media_type: str) -> bool:
    return media_type.startswith("application/vnd.oci.")


def _layer(media_type: str) -> tuple[str, bool, bool]:
    info = _LAYERS.get(media_type)
    if info is None:
        raise ImageError(f"unsupported layer media type {media_type!r}", media_type)
    return info


def layer_compression(media_type: str) -> str:
    """``""`` (plain tar), ``"gzip"`` or ``"zstd"``; ImageError for anything that is not a layer."""
    return _layer(media_type)[0]


def is_distributable(media_type: str) -> bool:
    """False for foreign / non-distributable layers, which are never pushed."""
    return _layer(media_type)[1]


def layer_media_type(compression: str = "gzip", *, docker: bool = False, distributable: bool = True) -> str:
    """The layer type one family writes for a compression."""
    found = _WRITE[docker].get((compression, distributable))
    if found is None:
        family = "Docker schema 2" if docker else "OCI"
        kind = "" if distributable else "non-distributable "
        raise ImageError(f"{family} has no media type for {kind}layers compressed with {compression or 'nothing'}",
                         compression)
    return found


def to_oci(media_type: str) -> str:
    """The OCI type for a Docker manifest, list, config or layer; other types unchanged."""
    for oci, docker in _SWAP.items():
        if media_type == docker:
            return oci
    if media_type in _LAYERS and _LAYERS[media_type][2]:
        compression, distributable, _ = _LAYERS[media_type]
        return layer_media_type(compression, distributable=distributable)
    return media_type


def to_docker(media_type: str) -> str:
    """The Docker type for an OCI manifest, index, config or layer; ImageError when there is none."""
    if media_type in _SWAP:
        return _SWAP[media_type]
    if media_type in _LAYERS and not _LAYERS[media_type][2]:
        compression, distributable, _ = _LAYERS[media_type]
        return layer_media_type(compression, docker=True, distributable=distributable)
    if media_type.startswith("application/vnd.oci."):
        raise ImageError(f"Docker schema 2 has no media type for {media_type}", media_type)
    return media_type
