"""Where the store lives (``default_root``) and where each object sits inside it (``Layout``).

Every path of the store is computed here and nowhere else, from validated hex digests only.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from .digests import digest_hex
from .rootdir import SYSTEM_ROOT_PATH, default_root_path

SYSTEM_ROOT = Path(SYSTEM_ROOT_PATH)


def default_root(env: Mapping[str, str] = os.environ, *, euid: int | None = None) -> Path:
    """The state root: ``PYBUILD_ROOT``, else ``/var/lib/pybuild`` for root, else the XDG data dir."""
    return Path(default_root_path(env, euid=euid))


@dataclass(frozen=True)
class Layout:
    """The directory layout under one state root.

    ``tmp/`` is inside the root so that every temp file or directory can be renamed into place
    (rename is only atomic within one filesystem).
    """

    root: Path

    @property
    def blobs(self) -> Path:
        return self.root / "blobs" / "sha256"

    @property
    def layers(self) -> Path:
        return self.root / "layers"

    @property
    def images(self) -> Path:
        return self.root / "images"

    @property
    def tags_file(self) -> Path:
        return self.root / "tags.json"

    @property
    def leases(self) -> Path:
        return self.root / "leases"

    @property
    def pins(self) -> Path:
        return self.root / "pins"

    @property
    def locks(self) -> Path:
        return self.root / "locks"

    @property
    def key_locks(self) -> Path:
        return self.root / "locks" / "keys"

    @property
    def tmp(self) -> Path:
        return self.root / "tmp"

    def blob_path(self, digest: str) -> Path:
        return self.blobs / digest_hex(digest)

    def layer_dir(self, diff_id: str) -> Path:
        return self.layers / digest_hex(diff_id)

    def layer_record(self, diff_id: str) -> Path:
        return self.layer_dir(diff_id) / "record.json"

    def snapshot_dir(self, diff_id: str) -> Path:
        return self.layer_dir(diff_id) / "diff"

    def image_record(self, image_id: str) -> Path:
        return self.images / (digest_hex(image_id) + ".json")

    def ensure(self) -> None:
        """Create the directories (the root private to its owner, as snapshots hold setuid files)."""
        if not self.root.is_dir():
            self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        for d in (self.blobs, self.layers, self.images, self.leases, self.key_locks, self.tmp):
            d.mkdir(parents=True, exist_ok=True)
