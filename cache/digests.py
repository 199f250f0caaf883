"""Digest strings and the ``BlobInfo`` descriptor.

Only ``sha256:<hex>`` is stored: the hex part becomes a file name, so validating it here is also what
keeps every store path inside the store.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from .errors import InvalidDigest

#: Read/hash/write granularity: large enough to run at disk speed, small enough to stay cache friendly.
CHUNK = 1 << 20

_DIGEST = re.compile(r"sha256:([0-9a-f]{64})")


def digest_hex(digest: str) -> str:
    """The 64-hex part of a ``sha256:`` digest; raises ``InvalidDigest`` for anything else."""
    m = _DIGEST.fullmatch(digest) if isinstance(digest, str) else None
    if m is None:
        raise InvalidDigest(digest)
    return m.group(1)


def is_digest(value: object) -> bool:
    return isinstance(value, str) and _DIGEST.fullmatch(value) is not None


def sha256_digest(data: bytes | bytearray | memoryview) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True, slots=True)
class BlobInfo:
    """What a stored blob is: its digest and its size in bytes."""

    digest: str
    size: int

    def __post_init__(self):
        digest_hex(self.digest)
        if not isinstance(self.size, int) or isinstance(self.size, bool) or self.size < 0:
            raise ValueError(f"blob size must be a non-negative int, not {self.size!r}")

    @property
    def hex(self) -> str:
        return self.digest[7:]

    def to_json(self) -> dict:
        return {"digest": self.digest, "size": self.size}

    @classmethod
    def from_json(cls, obj: dict) -> "BlobInfo":
        return cls(obj["digest"], obj["size"])
