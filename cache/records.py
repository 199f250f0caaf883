"""The store's records (frozen dataclasses), their JSON form, and a stat-keyed read cache.

Records are small JSON files replaced atomically (temp + rename). Because every write makes a new
inode, ``(inode, mtime, size)`` identifies a version exactly, so ``RecordCache`` can skip re-reading
and re-parsing a file that has not changed since the last read by this process.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Mapping, TypeVar

from .digests import BlobInfo, digest_hex
from .errors import RecordError

COMPRESSIONS = ("tar", "gzip", "zstd")
T = TypeVar("T")


def _frozen_json(value: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """A detached, read-only copy of JSON-compatible data (nested containers copied too)."""
    return MappingProxyType(json.loads(json.dumps(dict(value or {}))))


@dataclass(frozen=True)
class LayerRecord:
    """One layer, named by its diff_id (sha256 of the uncompressed tar).

    ``blobs`` maps a compression ("tar", "gzip", "zstd") to the stored blob of that form; ``snapshot``
    says ``layers/<hex>/diff/`` holds the layer unpacked (usable as an overlay lowerdir).
    """

    diff_id: str
    size: int
    snapshot: bool = False
    blobs: Mapping[str, BlobInfo] = field(default_factory=dict, hash=False)
    created: float = field(default_factory=time.time)

    def __post_init__(self):
        digest_hex(self.diff_id)
        if not isinstance(self.size, int) or self.size < 0:
            raise ValueError(f"layer size must be a non-negative int, not {self.size!r}")
        blobs = dict(self.blobs)
        for name, info in blobs.items():
            if name not in COMPRESSIONS:
                raise ValueError(f"unknown compression {name!r} (want one of {', '.join(COMPRESSIONS)})")
            if not isinstance(info, BlobInfo):
                raise TypeError(f"blobs[{name!r}] must be a BlobInfo")
        tar = blobs.get("tar")
        if tar is not None and (tar.digest != self.diff_id or tar.size != self.size):
            raise ValueError(f"the tar form of layer {self.diff_id} must have its digest and size, not "
                             f"{tar.digest} ({tar.size} bytes)")
        object.__setattr__(self, "blobs", MappingProxyType(dict(sorted(blobs.items()))))

    def to_json(self) -> dict:
        return {"diff_id": self.diff_id, "size": self.size, "snapshot": self.snapshot,
                "blobs": {k: v.to_json() for k, v in self.blobs.items()}, "created": self.created}

    @classmethod
    def from_json(cls, obj: dict) -> "LayerRecord":
        return cls(diff_id=obj["diff_id"], size=obj["size"], snapshot=bool(obj["snapshot"]),
                   blobs={k: BlobInfo.from_json(v) for k, v in obj["blobs"].items()},
                   created=float(obj["created"]))


@dataclass(frozen=True)
class ImageRecord:
    """One image, named by its config digest; ``manifest`` is the byte-exact stored manifest, if any.

    ``layers`` are diff_ids, bottom first; ``size`` is the sum of their uncompressed sizes; ``meta`` is
    free-form JSON for later parts (where it came from, platform, ...).
    """

    id: str
    config: BlobInfo
    layers: tuple[str, ...]
    manifest: BlobInfo | None = None
    size: int = 0
    created: float = field(default_factory=time.time)
    meta: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self):
        if not isinstance(self.config, BlobInfo) or not isinstance(self.manifest, (BlobInfo, type(None))):
            raise TypeError("config and manifest must be BlobInfo (manifest may be None)")
        if not isinstance(self.size, int) or self.size < 0:
            raise ValueError(f"image size must be a non-negative int, not {self.size!r}")
        if self.config.digest != self.id:
            raise ValueError(f"image id {self.id} must be its config digest {self.config.digest}")
        layers = tuple(self.layers)
        for d in layers:
            digest_hex(d)
        object.__setattr__(self, "layers", layers)
        object.__setattr__(self, "meta", _frozen_json(self.meta))

    def to_json(self) -> dict:
        return {"id": self.id, "config": self.config.to_json(),
                "manifest": self.manifest.to_json() if self.manifest else None,
                "layers": list(self.layers), "size": self.size, "created": self.created,
                "meta": dict(self.meta)}

    @classmethod
    def from_json(cls, obj: dict) -> "ImageRecord":
        manifest = obj.get("manifest")
        return cls(id=obj["id"], config=BlobInfo.from_json(obj["config"]), layers=tuple(obj["layers"]),
                   manifest=BlobInfo.from_json(manifest) if manifest else None, size=obj["size"],
                   created=float(obj["created"]), meta=obj.get("meta") or {})


def encode(obj: dict) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode() + b"\n"


def decode(path: Path, data: bytes, build: Callable[[dict], T]) -> T:
    """Parse a record file's bytes; any defect becomes a ``RecordError`` naming the file."""
    try:
        obj = json.loads(data)
        if not isinstance(obj, dict):
            raise ValueError("not a JSON object")
        return build(obj)
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        reason = f"missing field {e}" if isinstance(e, KeyError) else str(e)
        raise RecordError(path, reason) from None


class RecordCache:
    """Parsed JSON files of this process, reused while the file's (inode, mtime, size) is unchanged."""

    def __init__(self, max_entries: int = 4096):
        self._entries: dict[str, tuple[tuple[int, int, int, int], Any]] = {}
        self._max = max_entries
        self._lock = threading.Lock()

    def load(self, path: Path, build: Callable[[dict], T]) -> T:
        """The parsed file; ``FileNotFoundError`` if absent, ``RecordError`` if it does not parse."""
        key = os.fspath(path)
        st = os.stat(key)
        stamp = (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)
        hit = self._entries.get(key)
        if hit is not None and hit[0] == stamp:
            return hit[1]
        with open(key, "rb") as f:
            value = decode(path, f.read(), build)
        with self._lock:
            if len(self._entries) >= self._max:
                self._entries.clear()
            self._entries[key] = (stamp, value)
        return value

    def forget(self, path: Path) -> None:
        self._entries.pop(os.fspath(path), None)
