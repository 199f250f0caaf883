"""Base images of a build from registries: FROM (and ``COPY --from``) of an image not in the store
pulls it; ``build --pull`` pulls every named base once per build, so a moved tag is followed.

A name is pulled at most once per build (stages run in parallel threads and may name the same base);
a failure is remembered and raised again for every stage that names it. Errors come back as
``ImageNotFound`` naming the image and why it could not be pulled, so the build reports them at the
FROM line.
"""

from __future__ import annotations

import threading

from ..errors import ImageNotFound, PybuildError


class BasePuller:
    def __init__(self, store, *, always: bool = False, platform=None, progress=None):
        self.store = store
        self.always = always
        self.platform = platform
        self.progress = progress
        self._done: dict[str, BaseException | None] = {}
        self._lock = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}

    def ensure(self, name: str) -> None:
        """Make ``name`` present (pulled if missing, or always with ``--pull``); ids are left alone."""
        from ..image.reference import parse_lookup

        try:
            lookup = parse_lookup(name)
        except PybuildError:
            return              # not a reference: the lookup reports it
        if lookup.reference is None:
            return              # an image ID: only the local store has it
        key = str(lookup.reference)
        with self._lock:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            if key in self._done:
                error = self._done[key]
                if error is not None:
                    raise error
                return
            error = None
            try:
                if self.always or not self._present(name):
                    self._pull(name)
            except ImageNotFound as err:
                error = err
            self._done[key] = error
            if error is not None:
                raise error

    def wanted(self, name: str) -> bool:
        """Would ``ensure`` pull ``name`` (a reference missing from the store, or any with --pull)?"""
        from ..image.reference import parse_lookup

        try:
            lookup = parse_lookup(name)
        except PybuildError:
            return False
        if lookup.reference is None:
            return False
        with self._lock:
            if str(lookup.reference) in self._done:
                return False
        return self.always or not self._present(name)

    def _present(self, name: str) -> bool:
        from ..images.service import resolve_image

        try:
            resolve_image(self.store, name)
            return True
        except ImageNotFound:
            return False

    def _pull(self, name: str) -> None:
        from .errors import RegistryError
        from .pull import pull

        try:
            pull(self.store, name, platform=self.platform, progress=self.progress, cleanup=False)
        except (RegistryError, PybuildError) as err:
            if isinstance(err, ImageNotFound):
                raise
            message = getattr(err, "message", str(err))
            found = self._present(name)
            if found and not self.always:
                return
            raise ImageNotFound(f"image {name!r} is not in the local store and could not be pulled: {message}"
                                if not found else f"image {name!r} could not be pulled (--pull): {message}",
                                name) from None
