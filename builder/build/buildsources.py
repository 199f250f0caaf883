"""What a build step can read besides its own rootfs, by the name a Dockerfile uses for it.

``tree("")`` is the main build context; other names are, in BuildKit's order, a named context
(``--build-context``), a stage (by name, or by index for ``COPY --from``), or an image in the local
store. Stages and images are read through their layer snapshots (``LayeredTree``), never mounted,
so nothing is left behind if the build dies.
"""

from __future__ import annotations

import threading

from ..errors import ImageNotFound, PybuildError


class SourceError(PybuildError):
    """A ``--from`` name that names nothing usable."""


class BuildSources:
    def __init__(self, store, dockerfile, *, context_dir: str | None, ignore=None, named: dict | None = None,
                 lease=None):
        self.store = store
        self.dockerfile = dockerfile
        self.context_dir = context_dir
        self.ignore = ignore
        self.named = {k.lower(): v for k, v in (named or {}).items()}   # name -> ("dir", root, ignore) | ("image", ref)
        self.lease = lease
        self.stage_layers: dict[int, tuple] = {}   # finished stages: index -> diff_ids (bottom first)
        self._images: dict[str, tuple] = {}
        self.bases: dict[str, str] = {}           # every image read, reference (or "<by id>") -> image ID
        self.puller = None                         # registry.bases.BasePuller: pulls missing (or all) bases
        self._lock = threading.Lock()

    # -- the trees ------------------------------------------------------------------------------------

    def tree(self, name: str):
        from .sources import DirectoryTree, LayeredTree

        if not name:
            if self.context_dir is None:
                raise SourceError("this build has no context (the Dockerfile came on stdin): "
                                  "COPY and ADD of local files need one")
            return DirectoryTree(self.context_dir, description="build context", ignore=self.ignore)
        named = self.named.get(name.lower())
        if named is not None and named[0] == "dir":
            return DirectoryTree(named[1], description=f"build context {name!r}", ignore=named[2])
        index = self._stage_index(name) if named is None else None
        if index is not None:
            layers = self.stage_layers.get(index)
            if layers is None:
                raise SourceError(f"stage {name!r} has not been built (it is not a dependency here)")
            return LayeredTree(self._lowers(layers), description=f"stage {name!r}")
        ref = named[1] if named is not None else name
        if ref == "scratch" and named is not None:
            return LayeredTree((), description=f"build context {name!r} (scratch)")   # BuildKit: the empty image
        _, diff_ids, _ = self.image(ref)
        return LayeredTree(self._lowers(diff_ids), description=f"image {ref!r}")

    def _stage_index(self, name: str) -> int | None:
        stage = self.dockerfile.stage(name)
        if stage is None:
            return None
        if name.isdigit() or stage.name == name.lower():
            return stage.index
        return None

    def _lowers(self, diff_ids) -> tuple:
        return tuple(str(self.store.snapshot_path(d)) for d in reversed(tuple(diff_ids)))

    # -- images ---------------------------------------------------------------------------------------

    def image(self, name: str) -> tuple:
        """(image ID, diff_ids, normalized reference or None) of a local image, its snapshots made and
        the image leased."""
        with self._lock:
            found = self._images.get(name)
            if found is not None:
                return found
            from ..images.layers import ensure_snapshots
            from ..images.service import load_config, resolve_image

            if self.puller is not None:
                self.puller.ensure(name)
            try:
                image_id, reference = resolve_image(self.store, name)
            except ImageNotFound:
                raise ImageNotFound(f"image {name!r} is not in the local store", name) from None
            if self.lease is not None:
                self.lease.add(image_id)
            config = load_config(self.store, image_id)
            ensure_snapshots(self.store, config.rootfs.diff_ids)
            found = self._images[name] = (image_id, tuple(config.rootfs.diff_ids),
                                          str(reference) if reference is not None else None)
            self.bases[found[2] or f"<by id {image_id}>"] = image_id
            return found
