"""``pybuild save`` / ``pybuild load``: docker-archive and OCI archive tarballs.

save writes a docker-archive as current docker does (an OCI image layout plus docker's
``manifest.json`` and ``repositories``, layers as uncompressed tars, so both ``docker load`` and OCI
tools read it), or an OCI archive (``--format oci-archive``, gzip layers, as podman/skopeo write it).
load reads either, and also the legacy docker layout (``<id>/layer.tar``) that docker 20.10,
podman and skopeo write: every file is stored as a blob in one streaming pass (layer-looking
blobs are unpacked into snapshots in the same pass), then the manifests decide what the images are;
each layer's diff_id is checked against the image config. Layers are stored as blobs only; their
snapshots are unpacked when a build or container first uses them (``layers.ensure_snapshot``).
"""

from __future__ import annotations

import io
import json
import posixpath
import tarfile
from dataclasses import dataclass
from typing import BinaryIO, Iterable

from ..errors import ArchiveError, LayerError
from ..fs.compress import detect
from ..image import mediatypes as mt
from ..image.canonical import canonical_json
from ..image.config import parse_config
from ..image.descriptor import Descriptor
from ..image.index import build_index, parse_document
from ..image.manifest import Manifest, build_manifest
from ..image.reference import parse_reference
from .layers import CHUNK, layer_blob, open_layer_tar, store_layer_blob
from .service import resolve_image

DOCKER_ARCHIVE = "docker-archive"
OCI_ARCHIVE = "oci-archive"
_SMALL = 16 << 20  # JSON documents are read into memory; anything larger is a layer


# ----------------------------------------------------------------------------------------------
# save


@dataclass(frozen=True)
class _Saved:
    image_id: str
    names: tuple  # normalized references to record for this image


def _images_to_save(store, names: Iterable[str]) -> list[_Saved]:
    order: dict[str, list[str]] = {}
    for name in names:
        image_id, reference = resolve_image(store, name)
        tags = order.setdefault(image_id, [])
        if reference is not None and not reference.is_digested and str(reference) not in tags:
            tags.append(str(reference))
    return [_Saved(i, tuple(t)) for i, t in order.items()]


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def _add_dir(tar: tarfile.TarFile, name: str) -> None:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = 0o755
    tar.addfile(info)


def _add_stream(tar: tarfile.TarFile, name: str, size: int, stream: BinaryIO) -> None:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o644
    tar.addfile(info, stream)


def save(store, names: Iterable[str], out: BinaryIO, *, fmt: str = DOCKER_ARCHIVE) -> None:
    """Write the named images to ``out`` as one archive (``out`` need not be seekable)."""
    _save(store, _images_to_save(store, names), out, fmt)


def save_image(store, image_id: str, names: Iterable[str], out: BinaryIO, *, fmt: str = DOCKER_ARCHIVE) -> None:
    """Write one image under ``names`` that need not be its tags in the store (``build --output``)."""
    normalized: list[str] = []
    for name in names:
        full = str(parse_reference(name))
        if full not in normalized:
            normalized.append(full)
    _save(store, [_Saved(image_id, tuple(normalized))], out, fmt)


def _save(store, wanted: list[_Saved], out: BinaryIO, fmt: str) -> None:
    if fmt not in (DOCKER_ARCHIVE, OCI_ARCHIVE):
        raise ArchiveError(f"unknown archive format {fmt!r} (use docker-archive or oci-archive)")
    with store.lease("save", [w.image_id for w in wanted]):
        with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT, copybufsize=CHUNK) as tar:
            _add_dir(tar, "blobs")
            _add_dir(tar, "blobs/sha256")
            written: set[str] = set()
            index_entries, docker_manifest, repositories = [], [], {}
            for item in wanted:
                config_data = store.read_blob(item.image_id)
                config = parse_config(config_data, item.image_id)
                record = store.get_image(item.image_id)
                _write_blob(tar, written, item.image_id, config_data)
                layers = []
                layer_paths = []
                for diff_id in record.layers:
                    descriptor = _write_layer(store, tar, written, diff_id, fmt)
                    layers.append(descriptor)
                    layer_paths.append(f"blobs/sha256/{descriptor.digest.split(':', 1)[1]}")
                manifest = build_manifest(config, layers)
                manifest_data = canonical_json(manifest.to_dict())
                manifest_digest = _write_blob(tar, written, None, manifest_data)
                names = item.names or ("",)
                for name in names:
                    annotations = {}
                    if name:
                        reference = parse_reference(name)
                        annotations = {"io.containerd.image.name": str(reference),
                                       mt.ANNOTATION_REF_NAME: reference.tag or "latest"}
                    index_entries.append(Descriptor(mt.OCI_MANIFEST, manifest_digest, len(manifest_data),
                                                    annotations=annotations))
                docker_manifest.append({"Config": f"blobs/sha256/{item.image_id.split(':', 1)[1]}",
                                        "RepoTags": [parse_reference(n).familiar for n in item.names] or None,
                                        "Layers": layer_paths})
                for name in item.names:
                    reference = parse_reference(name)
                    if layer_paths:
                        repositories.setdefault(reference.familiar_name, {})[reference.tag] = \
                            layer_paths[-1].rsplit("/", 1)[1]
            _add_bytes(tar, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
            index = build_index(index_entries)
            _add_bytes(tar, "index.json", canonical_json(index.to_dict()))
            if fmt == DOCKER_ARCHIVE:
                _add_bytes(tar, "manifest.json", json.dumps(docker_manifest, separators=(",", ":")).encode())
                if repositories:
                    _add_bytes(tar, "repositories", json.dumps(repositories, separators=(",", ":")).encode())


def _write_blob(tar: tarfile.TarFile, written: set, digest: str | None, data: bytes) -> str:
    from ..image.digest import sha256_digest

    digest = digest or sha256_digest(data)
    if digest not in written:
        written.add(digest)
        _add_bytes(tar, f"blobs/sha256/{digest.split(':', 1)[1]}", data)
    return digest


def _write_layer(store, tar: tarfile.TarFile, written: set, diff_id: str, fmt: str) -> Descriptor:
    record = store.get_layer(diff_id)
    if fmt == DOCKER_ARCHIVE:
        descriptor = Descriptor(mt.OCI_LAYER, diff_id, record.size)
        if diff_id not in written:
            written.add(diff_id)
            with open_layer_tar(store, diff_id) as stream:
                try:
                    _add_stream(tar, f"blobs/sha256/{diff_id.split(':', 1)[1]}", record.size, stream)
                except OSError as err:
                    if err.errno is not None:  # a real I/O error, not tarfile's "unexpected end of data"
                        raise
                    raise LayerError(f"layer {diff_id}: its contents are now shorter than its {record.size} "
                                     "bytes (the snapshot or blob was changed on disk)") from None
        return descriptor
    info = layer_blob(store, diff_id, "gzip")
    descriptor = Descriptor(mt.OCI_LAYER_GZIP, info.digest, info.size)
    if info.digest not in written:
        written.add(info.digest)
        with store.open_blob(info.digest) as stream:
            _add_stream(tar, f"blobs/sha256/{info.digest.split(':', 1)[1]}", info.size, stream)
    return descriptor


# ----------------------------------------------------------------------------------------------
# load


@dataclass
class _File:
    digest: str
    size: int
    data: bytes | None = None       # small files (JSON documents) are kept in memory
    diff_id: str | None = None      # set when the file was unpacked as a layer
    compression: str | None = None


def _looks_like_layer(head: bytes) -> bool:
    if detect(head) in ("gzip", "zstd", "bzip2", "xz"):
        return True
    return len(head) >= 262 and head[257:262] == b"ustar"


def _normal(name: str) -> str:
    name = posixpath.normpath(name.lstrip("/"))
    return "" if name == "." else name


def _read_members(store, stream: BinaryIO) -> dict[str, _File]:
    files: dict[str, _File] = {}
    try:
        archive = tarfile.open(fileobj=stream, mode="r|*", copybufsize=CHUNK)
    except tarfile.TarError as err:
        raise ArchiveError(f"not an image archive: {err}") from None
    with archive:
        for member in archive:
            name = _normal(member.name)
            if member.issym() or member.islnk():
                target = member.linkname if member.islnk() else posixpath.join(posixpath.dirname(name), member.linkname)
                files[name] = files.get(_normal(target)) or _File("", 0)
                continue
            if not member.isfile():
                continue
            reader = archive.extractfile(member)
            head = reader.peek(512)[:512] if hasattr(reader, "peek") else b""
            if member.size > 1024 and _looks_like_layer(head):
                diff_id, info, compression = store_layer_blob(store, reader, snapshot=False)
                files[name] = _File(info.digest, info.size, diff_id=diff_id, compression=compression)
            elif member.size <= _SMALL:
                data = reader.read()
                info = store.put_blob(data)
                files[name] = _File(info.digest, info.size, data=data)
            else:
                info = store.put_blob(iter(lambda: reader.read(CHUNK), b""))
                files[name] = _File(info.digest, info.size)
    return files


def _file(files: dict[str, _File], name: str, what: str) -> _File:
    found = files.get(_normal(name))
    if found is None:
        raise ArchiveError(f"the archive's {what} names {name!r}, which is not in the archive", name)
    return found


def _json(file: _File, name: str):
    if file.data is None:
        raise ArchiveError(f"{name} is too large to be a JSON document", name)
    try:
        return json.loads(file.data)
    except ValueError as err:
        raise ArchiveError(f"{name} is not valid JSON: {err}", name) from None


def _layer_diff_id(store, file: _File, name: str) -> str:
    if file.diff_id is None:  # small or odd-looking layer: unpack it from the stored blob now
        with store.open_blob(file.digest) as blob:
            diff_id, _, compression = store_layer_blob(store, blob, expected=file.digest, snapshot=False)
        file.diff_id, file.compression = diff_id, compression
    return file.diff_id


def _register(store, config_file: _File, layer_files: list[tuple[str, _File]], manifest: _File | None,
              source: str) -> str:
    from .service import store_config

    config = parse_config(config_file.data or store.read_blob(config_file.digest), config_file.digest)
    diff_ids = [_layer_diff_id(store, f, n) for n, f in layer_files]
    expected = list(config.rootfs.diff_ids)
    if diff_ids != expected:
        raise ArchiveError(f"image {config_file.digest}: its layers hash to {diff_ids}, but its config lists "
                           f"{expected}", config_file.digest)
    from cache.digests import BlobInfo

    manifest_info = BlobInfo(manifest.digest, manifest.size) if manifest is not None else None
    return store_config(store, config, tuple(diff_ids), manifest=manifest_info, meta={"source": source})


def load(store, stream: BinaryIO) -> list[str]:
    """Load every image of a docker-archive or OCI archive; returns docker's output lines."""
    from .service import tag_image

    with store.lease("load"):
        files = _read_members(store, stream)
        lines: list[str] = []
        if "manifest.json" in files:
            for entry in _json(files["manifest.json"], "manifest.json") or []:
                config = _file(files, entry["Config"], "manifest.json")
                layers = [(p, _file(files, p, "manifest.json")) for p in entry.get("Layers") or []]
                image_id = _register(store, config, layers, None, "docker-archive")
                tags = entry.get("RepoTags") or []
                for tag in tags:
                    full = tag_image(store, image_id, tag)
                    lines.append(f"Loaded image: {parse_reference(full).familiar}")
                if not tags:
                    lines.append(f"Loaded image ID: {image_id}")
            return lines
        if "index.json" in files:
            return _load_oci(store, files)
        raise ArchiveError("not an image archive: it has neither manifest.json (docker) nor index.json (OCI)")


def _blob_file(files: dict[str, _File], digest: str) -> _File:
    algorithm, _, hex_ = digest.partition(":")
    return _file(files, f"blobs/{algorithm}/{hex_}", "index")


def _load_oci(store, files: dict[str, _File]) -> list[str]:
    from .service import tag_image

    index_doc = files["index.json"]
    lines: list[str] = []
    pending = [(d, None) for d in _json(index_doc, "index.json").get("manifests") or []]
    while pending:
        entry, inherited = pending.pop(0)
        annotations = entry.get("annotations") or {}
        name = annotations.get("io.containerd.image.name") or inherited
        ref_name = annotations.get(mt.ANNOTATION_REF_NAME)
        file = _blob_file(files, entry["digest"])
        document = parse_document(file.data or store.read_blob(file.digest), entry.get("mediaType", ""),
                                  entry["digest"])
        if not isinstance(document, Manifest):
            from ..image.platform import host_platform
            from ..image.index import select_manifest

            chosen = select_manifest(document, host_platform())
            pending.append(({"digest": chosen.digest, "mediaType": chosen.media_type,
                             "annotations": dict(annotations)}, name))
            continue
        config = _blob_file(files, document.config.digest)
        layers = [(layer.digest, _blob_file(files, layer.digest)) for layer in document.layers]
        image_id = _register(store, config, layers, file, "oci-archive")
        tag = _oci_tag(name, ref_name)
        if tag:
            tag_image(store, image_id, tag)
            lines.append(f"Loaded image: {parse_reference(tag).familiar}")
        else:
            lines.append(f"Loaded image ID: {image_id}")
    return lines


def _oci_tag(name: str | None, ref_name: str | None) -> str | None:
    """The image name an OCI index entry carries: a full name, or a ref.name that is one or a tag."""
    if name:
        return name
    if not ref_name:
        return None
    if ":" in ref_name or "/" in ref_name:
        return ref_name
    return None  # a bare tag ("latest") names no repository; docker loads such images by ID
