"""Tags: ``tags.json`` maps a reference name (opaque to the store) to an image id.

Every change is a read-modify-write under the tags lock (inside the shared store lock) and is
published by an atomic replace, so concurrent taggers never lose each other's updates and readers
never see a half-written file. Reads take no lock and are served from the stat-keyed cache.
"""

from __future__ import annotations

from typing import Callable

from .digests import digest_hex
from .fsutil import atomic_write
from .locks import StoreLocks
from .paths import Layout
from .records import RecordCache, encode

Tags = dict[str, str]


def _parse(obj: dict) -> Tags:
    tags = obj["tags"]
    if not isinstance(tags, dict):
        raise ValueError("'tags' is not an object")
    for name, image_id in tags.items():
        digest_hex(image_id)
    return dict(tags)


class TagStore:
    def __init__(self, layout: Layout, locks: StoreLocks, cache: RecordCache,
                 require_image: Callable[[str], None]):
        self.layout = layout
        self.locks = locks
        self.cache = cache
        self._require_image = require_image

    def all(self) -> Tags:
        """A copy of every tag (name -> image id)."""
        return dict(self._load())

    def resolve(self, name: str) -> str | None:
        return self._load().get(name)

    def tags_for(self, image_id: str) -> tuple[str, ...]:
        return tuple(sorted(n for n, i in self._load().items() if i == image_id))

    def set(self, name: str, image_id: str) -> str | None:
        """Point ``name`` at an existing image; returns the image it pointed to before, if any."""
        if not isinstance(name, str) or not name or "\n" in name:
            raise ValueError(f"invalid tag name {name!r}")
        with self.locks.shared(), self.locks.tags():
            self._require_image(image_id)
            return self._update(lambda tags: tags.__setitem__(name, image_id), name)

    def remove(self, name: str) -> str | None:
        """Remove ``name``; returns the image it pointed to, or None if there was no such tag."""
        with self.locks.shared(), self.locks.tags():
            return self._update(lambda tags: tags.pop(name, None), name)

    def remove_image_tags_locked(self, image_id: str) -> tuple[str, ...]:
        """Drop every tag of ``image_id``; the caller holds the shared store lock and the tags lock."""
        removed = self.tags_for(image_id)
        if removed:
            self._update(lambda tags: [tags.pop(n) for n in removed], None)
        return removed

    def _update(self, change: Callable[[Tags], object], name: str | None) -> str | None:
        tags = dict(self._load())
        before = tags.get(name) if name is not None else None
        change(tags)
        atomic_write(self.layout.tags_file, encode({"tags": dict(sorted(tags.items()))}), self.layout.tmp)
        return before

    def _load(self) -> Tags:
        try:
            return self.cache.load(self.layout.tags_file, _parse)
        except FileNotFoundError:
            return {}
