"""-v / --mount / --tmpfs and the image's VOLUMEs, resolved to a container's mounts at create time
(``mounts.resolve_mounts`` makes the volumes and fills new ones from the image)."""

from __future__ import annotations


def plan_mounts(root, options, image_volumes: tuple, image_id: str):
    """(mounts, volume names, anonymous volume names) for ``build_config``."""
    from .records import Mount

    if not (options.volumes or options.mounts or options.tmpfs or image_volumes):
        return (), (), ()
    from .mounts import parse_mount, parse_tmpfs, parse_volume, resolve_mounts

    requests = [parse_volume(v) for v in options.volumes] + [parse_mount(m) for m in options.mounts] + \
        [parse_tmpfs(t) for t in options.tmpfs]
    view = None
    if any(r.type == "volume" for r in requests) or image_volumes:
        view = _image_tree(root, image_id)
    resolved = resolve_mounts(requests, image_volumes, volume_store(root), view)
    kinds = {p.destination: p for p in resolved.points}
    mounts = []
    for bind in resolved.binds:
        point = kinds.get(bind.target)
        kind = point.type if point is not None else "bind"
        mounts.append(Mount(kind, bind.source, bind.target, bind.readonly, point.name if point else ""))
    for tmpfs in resolved.tmpfs:
        mounts.append(Mount("tmpfs", "", tmpfs.target, tmpfs.readonly, "", tmpfs.size, tmpfs.mode, tmpfs.noexec,
                            tmpfs.nodev))
    return tuple(mounts), tuple(resolved.volume_names), tuple(resolved.anonymous)


_STORES: dict = {}


def volume_store(root):
    """One ``VolumeStore`` per root in this process: its lock is re-entrant per object, and create holds
    it from making the volumes until the container's record names them."""
    from .volumes import VolumeStore

    key = str(root)
    if key not in _STORES:
        _STORES[key] = VolumeStore(root)
    return _STORES[key]


def _image_tree(root, image_id: str):
    from cache import Store

    from ..build.sources import LayeredTree
    from ..images.layers import ensure_snapshots
    from ..images.service import load_config

    store = Store.open(root)
    config = load_config(store, image_id)
    lowers = tuple(str(p) for p in reversed(ensure_snapshots(store, config.rootfs.diff_ids)))
    return LayeredTree(lowers, description=f"image {image_id}")


__all__ = ["plan_mounts", "volume_store"]
