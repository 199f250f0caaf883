"""Image operations on the local store, with docker's semantics and docker-shaped results.

Finding an image by name or ID, tagging, removing (``rmi``), listing, history, inspect, prune and
disk usage. Results are plain dicts shaped like docker's JSON so the CLI can render them with
docker's tables and ``--format`` templates.
"""

from __future__ import annotations

import time
from typing import Iterable

from cache.digests import BlobInfo

from ..errors import ImageError, ImageNotFound
from ..image.canonical import canonical_json
from ..image.config import ImageConfig, parse_config, parse_timestamp
from ..image.reference import Reference, parse_lookup, parse_reference


# ----------------------------------------------------------------------------------------------
# Storing and naming


def store_config(store, config: ImageConfig, layers: tuple, *, manifest: BlobInfo | None = None,
                 meta: dict | None = None) -> str:
    """Store ``config`` (canonical JSON unless it carries its original bytes) and record the image."""
    data = config.to_bytes() if config.raw is not None else canonical_json(config.to_dict())
    info = store.put_blob(data)
    store.put_image(info, layers, manifest=manifest, meta=meta or {})
    return info.digest


def tag_image(store, image_id: str, name: str) -> str:
    """Point ``name`` (normalized, ``:latest`` added) at ``image_id``; returns the normalized name."""
    reference = parse_reference(name)
    if reference.is_digested:
        raise ImageError(f"refusing to create a tag with a digest reference: {name}", name)
    full = str(reference)
    store.set_tag(full, image_id)
    return full


def resolve_image(store, name: str) -> tuple[str, Reference | None]:
    """Find an image as docker does: by name first (``busybox`` = ``busybox:latest``), then by ID.

    Returns (image id, the reference used or None when found by ID).
    """
    lookup = parse_lookup(name)
    if lookup.reference is not None:
        found = store.resolve(str(lookup.reference))
        if found is not None:
            return found, lookup.reference
        if lookup.reference.is_digested:
            pinned = f"{lookup.reference.name}@{lookup.reference.digest}"
            for image in store.images():
                if image.manifest is not None and image.manifest.digest == lookup.reference.digest \
                        or pinned in (image.meta.get("repo_digests") or ()):
                    return image.id, lookup.reference
    if lookup.id_prefix is not None:
        matches = [i for i in store.image_ids() if lookup.id_prefix.matches(i)]
        if len(matches) == 1:
            return matches[0], None
        if len(matches) > 1:
            raise ImageError(f"short ID {name} is ambiguous: it matches {len(matches)} images", name)
    missing = str(lookup.reference.familiar) if lookup.reference is not None else name
    raise ImageNotFound(f"No such image: {missing}", name)


def familiar(name: str) -> tuple[str, str]:
    """(repository, tag) of a stored tag name as docker shows them (``busybox``, ``latest``)."""
    reference = parse_reference(name)
    return reference.familiar_name, reference.tag or "<none>"


def load_config(store, image_id: str) -> ImageConfig:
    return parse_config(store.read_blob(image_id), image_id)


def _created_seconds(config: ImageConfig, record) -> float:
    if config.created:
        try:
            return parse_timestamp(config.created) / 1e9
        except ValueError:
            pass
    return record.created


def _short(image_id: str) -> str:
    return image_id.split(":", 1)[-1][:12]


def _created_at(seconds: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S +0000 UTC", time.gmtime(seconds))


def _rfc3339(seconds: float) -> str:
    """docker history's ``CreatedAt`` (Go's time.RFC3339, whole seconds)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


# ----------------------------------------------------------------------------------------------
# Listing


def list_images(store, *, all_images: bool = False, filters: Iterable[str] = ()) -> list[dict]:
    """Rows of ``pybuild images``, newest first (docker's order)."""
    from ..format import human_size, since

    dangling = None
    references: list[str] = []
    for item in filters:
        key, eq, value = item.partition("=")
        if not eq:
            raise ImageError(f"bad format of filter (expected name=value): {item}", item)
        if key == "dangling":
            if value.lower() not in ("true", "false", "1", "0"):
                raise ImageError(f"invalid filter 'dangling={value}'", item)
            dangling = value.lower() in ("true", "1")
        elif key == "reference":
            references.append(value)
        else:
            raise ImageError(f"invalid filter '{key}'", item)
    tags_by_image: dict[str, list[str]] = {}
    for name, image_id in store.tags().items():
        tags_by_image.setdefault(image_id, []).append(name)
    rows = []
    for record in store.images():
        config = load_config(store, record.id)
        created = _created_seconds(config, record)
        names = sorted(tags_by_image.get(record.id, []))
        if dangling is True and names or dangling is False and not names:
            continue
        digests = dict(d.rpartition("@")[::2] for d in _repo_digests(record, names))
        digest = record.manifest.digest if record.manifest and not digests else "<none>"
        base = {"ID": _short(record.id), "Containers": "N/A", "CreatedAt": _created_at(created),
                "CreatedSince": since(created), "Digest": digest, "SharedSize": "N/A", "Size": human_size(record.size),
                "UniqueSize": "N/A", "VirtualSize": human_size(record.size, 4), "_created": created, "_id": record.id}
        entries = [familiar(n) for n in names] or [("<none>", "<none>")]
        for repository, tag in entries:
            if references and (not names or not any(_reference_matches(p, repository, tag) for p in references)):
                continue  # an image without a name matches no reference pattern (as docker)
            rows.append({"Repository": repository, "Tag": tag, **base, "Digest": digests.get(repository, digest)})
    rows.sort(key=lambda r: (-r["_created"], r["Repository"], r["Tag"]))
    for row in rows:
        row.pop("_created")
        row.pop("_id")
    return rows


def _reference_matches(pattern: str, repository: str, tag: str) -> bool:
    """docker's ``reference=`` filter (``reference.FamiliarMatch``): Go's ``path.Match`` of the pattern
    against ``repository:tag``, else against ``repository``; ``*`` and ``?`` never match a ``/``."""
    return _path_match(pattern, f"{repository}:{tag}") or _path_match(pattern, repository)


def _path_match(pattern: str, name: str) -> bool:
    import fnmatch

    parts, names = pattern.split("/"), name.split("/")
    return len(parts) == len(names) and all(fnmatch.fnmatchcase(n, p) for p, n in zip(parts, names))


# ----------------------------------------------------------------------------------------------
# Removing


def remove_images(store, names: Iterable[str], *, force: bool = False, users=None) -> list[str]:
    """``rmi``: untag, and delete images left without tags. Returns docker's output lines.

    ``users(image_id)`` lists the containers using an image as (id, running) pairs; as docker, the last
    name of an image a container uses is kept unless forced, an image is never deleted under a running
    container (forced: only untagged), and a stopped container's image is deleted only when forced (the
    container keeps its layers through its pin)."""
    out: list[str] = []
    for name in names:
        image_id, reference = resolve_image(store, name)
        tags = store.tags_for(image_id)
        using = list(users(image_id)) if users is not None else []
        running = [cid for cid, up in using if up]
        if reference is not None and not reference.is_digested:
            if using and len(tags) <= 1 and not force:
                raise ImageError(f'conflict: unable to remove repository reference "{name}" (must force) - '
                                 f"container {using[0][0][:12]} is using its referenced image {_short(image_id)}",
                                 name)
            store.remove_tag(str(reference))
            out.append(f"Untagged: {reference.familiar}")
            if len(tags) > 1 or running:
                continue
        else:
            if len(tags) > 1 and not force:
                raise ImageError(f"conflict: unable to delete {_short(image_id)} (must be forced) - image is "
                                 "referenced in multiple repositories", name)
            if running:
                raise ImageError(f"conflict: unable to delete {_short(image_id)} (cannot be forced) - image is "
                                 f"being used by running container {running[0][:12]}", name)
            if using and not force:
                raise ImageError(f"conflict: unable to delete {_short(image_id)} (must be forced) - image is "
                                 f"being used by stopped container {using[0][0][:12]}", name)
            for tag in tags:
                store.remove_tag(tag)
                out.append(f"Untagged: {parse_reference(tag).familiar}")
        store.remove_image(image_id)
        out.append(f"Deleted: {image_id}")
    if out:
        store.gc()
    return out


def prune_images(store, *, all_images: bool = False, users=None) -> tuple[list[str], int]:
    """``image prune [-a]``: dangling images (or every image, with -a), but none a container uses
    (``users`` as for ``remove_images``). Returns (lines, bytes freed)."""
    before = store.disk_usage()
    lines: list[str] = []
    tagged = set(store.tags().values())
    for record in store.images():
        if record.id in tagged and not all_images:
            continue
        if users is not None and list(users(record.id)):
            continue
        for tag in store.tags_for(record.id):
            store.remove_tag(tag)
            lines.append(f"untagged: {parse_reference(tag).familiar}")
        store.remove_image(record.id)
        lines.append(f"deleted: {record.id}")
    store.gc()
    after = store.disk_usage()
    return lines, max(_total(before) - _total(after), 0)


def _total(usage) -> int:
    return getattr(usage, "total", 0) or sum(v for v in vars(usage).values() if isinstance(v, int))


# ----------------------------------------------------------------------------------------------
# History and inspect


def history(store, name: str) -> list[dict]:
    """Rows of ``pybuild history``, newest first; layer sizes from the layer records."""
    from ..format import human_size, since

    image_id, _ = resolve_image(store, name)
    config = load_config(store, image_id)
    layers = list(store.get_image(image_id).layers)
    rows = []
    layer_index = 0
    for entry in config.history:
        size = 0
        if not entry.empty_layer and layer_index < len(layers):
            size = store.get_layer(layers[layer_index]).size
            layer_index += 1
        created = parse_timestamp(entry.created) / 1e9 if entry.created else 0
        rows.append({"ID": "<missing>", "CreatedSince": since(created) if created else "N/A",
                     "CreatedAt": _rfc3339(created) if created else "", "CreatedBy": entry.created_by,
                     "Size": human_size(size), "Comment": entry.comment, "_bytes": size})
    rows.reverse()
    if rows:
        rows[0]["ID"] = _short(image_id)
    return rows


def inspect_image(store, name: str) -> dict:
    """docker's ``image inspect`` JSON for one image."""
    image_id, _ = resolve_image(store, name)
    record = store.get_image(image_id)
    config = load_config(store, image_id)
    tags = sorted(store.tags_for(image_id))
    repo_digests = _repo_digests(record, tags)
    container = config.config.to_dict()
    defaults = {"Hostname": "", "Domainname": "", "User": "", "AttachStdin": False, "AttachStdout": False,
                "AttachStderr": False, "Tty": False, "OpenStdin": False, "StdinOnce": False, "Env": None, "Cmd": None,
                "Image": "", "Volumes": None, "WorkingDir": "", "Entrypoint": None, "OnBuild": None, "Labels": None}
    # what the config carries wins (docker's legacy builder writes Hostname, Image, ... into it)
    docker_config = {key: container.get(key, default) for key, default in defaults.items()}
    for key in ("ExposedPorts", "Healthcheck", "StopSignal", "Shell", "ArgsEscaped"):
        if key in container:
            docker_config[key] = container[key]
    comment = config.extra.get("comment") or (config.history[-1].comment if config.history else "")  # as docker
    out = {
        "Id": image_id,
        "RepoTags": [parse_reference(t).familiar for t in tags],
        "RepoDigests": repo_digests,
        "Parent": "",
        "Comment": comment,
        "Created": config.created or "",
        "DockerVersion": config.extra.get("docker_version", ""),
        "Author": config.author,
        "Config": docker_config,
        "Architecture": config.architecture,
        "Os": config.os,
        "Size": record.size,
        "GraphDriver": {"Data": {"LowerDir": ":".join(str(store.layout.snapshot_dir(d)) for d in reversed(record.layers))},
                        "Name": "pybuild"},
        "RootFS": {"Type": config.rootfs.type, "Layers": list(config.rootfs.diff_ids)},
        "Metadata": {"LastTagTime": "0001-01-01T00:00:00Z"},  # not tracked: Go's zero time, as docker shows
    }
    if config.variant:
        out["Variant"] = config.variant
    if config.os_version:
        out["OsVersion"] = config.os_version
    return out


def _repo_digests(record, tags) -> list[str]:
    """``name@digest`` of the registries the image was pulled from or pushed to (familiar names); an
    image with a manifest but no registry history (loaded from an archive) shows its tags with it."""
    pinned = record.meta.get("repo_digests")
    if pinned is not None:
        out = set()
        for entry in pinned:
            name, _, digest = entry.partition("@")
            out.add(f"{parse_reference(name).familiar_name}@{digest}")
        return sorted(out)
    if record.manifest is None:
        return []
    return sorted({f"{parse_reference(t).familiar_name}@{record.manifest.digest}" for t in tags})


def disk_usage_rows(store) -> list[dict]:
    """``system df`` rows (containers, volumes and build cache come with later parts)."""
    from ..format import human_size

    images = store.images()
    size = sum(store.get_layer(d).size for d in {d for i in images for d in i.layers})  # shared layers once
    reclaimable = size  # no image is in use by a container yet (containers come with the runtime)
    percent = f" ({100 * reclaimable // size}%)" if size else ""  # docker truncates
    return [
        {"Type": "Images", "TotalCount": str(len(images)), "Active": "0", "Size": human_size(size, 4),
         "Reclaimable": f"{human_size(reclaimable, 4)}{percent}"},
        {"Type": "Containers", "TotalCount": "0", "Active": "0", "Size": "0B", "Reclaimable": "0B"},
        {"Type": "Local Volumes", "TotalCount": "0", "Active": "0", "Size": "0B", "Reclaimable": "0B"},
        {"Type": "Build Cache", "TotalCount": "0", "Active": "0", "Size": "0B", "Reclaimable": "0B"},
    ]
