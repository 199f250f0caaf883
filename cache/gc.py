"""Garbage collection: mark everything reachable from the roots, sweep the rest.

Roots are digests: every tag's image, every ref of a live lease, every ref a registered root
provider returns (build cache, cache mounts, containers, volumes: parts that ``cache`` must not
import register themselves here) and, unless dangling images are being pruned, every image record.
A root keeps the image, layer and blob of its name; an image keeps its config, its manifest (and
every digest the manifest names) and its layers; a layer keeps its record, snapshot and blobs.

Everything runs under the exclusive store lock, so no writer publishes between mark and sweep.
Referrers are deleted before what they refer to (images, then layers, then blobs), so a crash
mid-sweep never leaves a record pointing at missing content. Removed layer directories are first
renamed into ``tmp/`` (still owned), and deleted after the lock is released to keep GC's pause short.
If a provider fails or a reachable record cannot be read, GC deletes nothing.
"""

from __future__ import annotations

import fcntl
import json
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Iterable

from . import leases as leases_mod
from . import tempfiles
from .digests import digest_hex, is_digest
from .errors import BlobNotFound, CorruptBlob, RecordNotFound, StoreError
from .fsutil import fsync_dir, temp_name, tree_size
from .tempfiles import OwnedEntry

if TYPE_CHECKING:
    from .store import Store

RootProvider = Callable[["Store"], Iterable[str]]
_PROVIDERS: dict[str, RootProvider] = {}


def register_root_provider(name: str, fn: RootProvider) -> None:
    """Make ``fn(store) -> iterable of digests`` a source of GC roots in this process.

    ``fn`` runs under the exclusive store lock: it may read the store, never write to it. Whoever
    runs GC must have imported the modules that register providers (the CLI does).
    """
    _PROVIDERS[name] = fn


def unregister_root_provider(name: str) -> None:
    _PROVIDERS.pop(name, None)


def root_providers() -> dict[str, RootProvider]:
    return dict(_PROVIDERS)


@dataclass(frozen=True)
class GCResult:
    """What a collection removed (or, with ``dry_run``, would remove)."""

    bytes_freed: int = 0
    images_removed: tuple[str, ...] = ()
    layers_removed: int = 0
    blobs_removed: int = 0
    temp_removed: int = 0
    leases_removed: int = 0
    dry_run: bool = False


@dataclass
class Plan:
    """The outcome of marking: what is reachable and what is not."""

    roots: set[str]
    images: set[str] = field(default_factory=set)
    layers: set[str] = field(default_factory=set)
    blobs: set[str] = field(default_factory=set)
    dead_images: list[str] = field(default_factory=list)
    dead_layers: list[str] = field(default_factory=list)  # hex names of layer directories
    dead_blobs: list[str] = field(default_factory=list)


def gather_roots(store: "Store", *, prune_dangling: bool) -> set[str]:
    roots = set(store.tags().values())
    roots.update(store.build_cache.roots())
    for refs in store.pinned().values():
        roots.update(refs)
    live, _stale = leases_mod.scan(store.layout.leases)
    for lease in live:
        roots.update(lease.refs)
    for name, fn in root_providers().items():
        try:
            refs = list(fn(store))
        except Exception as e:
            raise StoreError(f"GC root provider {name!r} failed, nothing was deleted: {e}", name) from e
        for ref in refs:
            digest_hex(ref)
        roots.update(refs)
    if not prune_dangling:
        roots.update(store.image_ids())
    return roots


def _manifest_refs(store: "Store", digest: str) -> set[str]:
    """Every digest a stored manifest (or index) names, wherever it sits in the JSON."""
    try:
        doc = json.loads(store.read_blob(digest))
    except (BlobNotFound, CorruptBlob, ValueError):
        return set()
    found: set[str] = set()
    stack = [doc]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            d = node.get("digest")
            if is_digest(d):
                found.add(d)
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found


def mark(store: "Store", roots: set[str]) -> Plan:
    plan = Plan(roots=set(roots))

    def mark_layer(diff_id: str) -> None:
        if diff_id in plan.layers:
            return
        try:
            rec = store.get_layer(diff_id)
        except RecordNotFound:
            return
        plan.layers.add(diff_id)
        plan.blobs.update(b.digest for b in rec.blobs.values())

    for ref in roots:
        plan.blobs.add(ref)
        if ref not in plan.images and store.has_image(ref):
            img = store.get_image(ref)
            plan.images.add(ref)
            plan.blobs.add(img.config.digest)
            if img.manifest is not None:
                plan.blobs.add(img.manifest.digest)
                plan.blobs.update(_manifest_refs(store, img.manifest.digest))
            for diff_id in img.layers:
                mark_layer(diff_id)
        mark_layer(ref)
    return plan


def make_plan(store: "Store", *, prune_dangling: bool) -> Plan:
    """Mark from the roots and list what is unreachable (the caller holds a store lock)."""
    plan = mark(store, gather_roots(store, prune_dangling=prune_dangling))
    plan.dead_images = [i for i in store.image_ids() if i not in plan.images]
    try:
        layer_names = sorted(os.listdir(store.layout.layers))
    except FileNotFoundError:
        layer_names = []
    plan.dead_layers = [n for n in layer_names if is_digest("sha256:" + n) and "sha256:" + n not in plan.layers]
    plan.dead_blobs = [d for d in store.blob_digests() if d not in plan.blobs]
    return plan


def _blob_size(store: "Store", digest: str) -> int:
    try:
        return os.stat(store.layout.blob_path(digest)).st_size
    except FileNotFoundError:
        return 0


def collect(store: "Store", *, prune_dangling: bool = False, dry_run: bool = False,
            timeout: float | None = None) -> GCResult:
    """Run one collection (see the module docstring); ``timeout`` bounds the wait for the store lock."""
    if dry_run:  # read-only: the shared lock keeps writers' publications whole
        with store.locks.shared():
            plan = make_plan(store, prune_dangling=prune_dangling)
            freed = sum(_blob_size(store, d) for d in plan.dead_blobs)
            freed += sum(tree_size(store.layout.layers / n) for n in plan.dead_layers)
            temp_count, temp_bytes = tempfiles.sweep_stale(store.layout.tmp, dry_run=True)
            _live, stale_leases = leases_mod.scan(store.layout.leases)
        return GCResult(freed + temp_bytes, tuple(plan.dead_images), len(plan.dead_layers),
                        len(plan.dead_blobs), temp_count, stale_leases, dry_run=True)
    hidden: list[OwnedEntry] = []
    freed = 0
    try:
        with store.locks.exclusive(store.locks.timeout if timeout is None else timeout):
            plan = make_plan(store, prune_dangling=prune_dangling)
            freed += _sweep(store, plan, hidden)
            temp_count, temp_bytes = tempfiles.sweep_stale(store.layout.tmp)
            _live, stale_leases = leases_mod.scan(store.layout.leases, remove_stale=True)
            store.locks.sweep_key_locks()
    finally:
        for entry in hidden:  # outside the lock: writers may proceed while the trees go
            freed += tree_size(entry.path)
            entry.discard()
    return GCResult(freed + temp_bytes, tuple(plan.dead_images), len(plan.dead_layers),
                    len(plan.dead_blobs), temp_count, stale_leases)


def _sweep(store: "Store", plan: Plan, hidden: list[OwnedEntry]) -> int:
    """Delete referrers first: image records, then layer directories (hidden), then blobs."""
    for image_id in plan.dead_images:
        os.unlink(store.layout.image_record(image_id))
    if plan.dead_images:
        fsync_dir(store.layout.images)
    for name in plan.dead_layers:
        entry = _hide(store, name)
        if entry is not None:
            hidden.append(entry)
    if hidden:
        fsync_dir(store.layout.layers)
    freed = 0
    for digest in plan.dead_blobs:
        path = store.layout.blob_path(digest)
        try:
            freed += os.stat(path).st_size
            os.unlink(path)
        except FileNotFoundError:
            pass
    if plan.dead_blobs:
        fsync_dir(store.layout.blobs)
    return freed


def _hide(store: "Store", name: str) -> OwnedEntry | None:
    """Move a layer directory into ``tmp/`` in one rename, keeping it owned until it is deleted."""
    src = store.layout.layers / name
    try:
        fd = os.open(src, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError:
        return None
    fcntl.flock(fd, fcntl.LOCK_EX)
    dest = store.layout.tmp / temp_name(f"gc-{name[:12]}")
    try:
        os.rename(src, dest)
    except OSError:
        os.close(fd)
        return None
    return OwnedEntry(dest, fd)
