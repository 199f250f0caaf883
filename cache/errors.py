"""The store's exception hierarchy (``cache`` never imports ``builder``, so it has its own).

    StoreError                 anything the store refuses or finds broken; ``subject`` names the object
    ├── InvalidDigest          a string that is not ``sha256:<64 lowercase hex>`` (also a ``ValueError``)
    ├── BlobNotFound           no blob with that digest
    ├── CorruptBlob            a stored blob whose bytes no longer hash to its name
    ├── DigestMismatch         content offered for a put did not match the expected digest or size
    ├── RecordNotFound         no layer or image record with that key
    ├── RecordError            a record file that cannot be parsed, or a record that contradicts the stored one
    └── LockTimeout            a lock was not acquired in time; names the lock and, if known, the holder pid

Every error keeps its context as attributes so the CLI can render it without parsing messages.
"""

from __future__ import annotations

from pathlib import Path


class StoreError(Exception):
    """Base of every store error; ``subject`` is the digest, path or lock name it is about."""

    def __init__(self, message: str, subject: str | None = None):
        super().__init__(message)
        self.message = message
        self.subject = subject

    def __str__(self) -> str:
        return self.message


class InvalidDigest(StoreError, ValueError):
    """A digest string the store cannot use (only sha256 is stored; hex keeps paths safe)."""

    def __init__(self, value: object):
        super().__init__(f"invalid digest {value!r}: want sha256:<64 lowercase hex digits>", str(value))
        self.value = value


class BlobNotFound(StoreError):
    """No blob with this digest in the store."""

    def __init__(self, digest: str):
        super().__init__(f"blob {digest} not found", digest)
        self.digest = digest


class CorruptBlob(StoreError):
    """A stored blob's bytes do not hash to its name (disk corruption or tampering)."""

    def __init__(self, digest: str, path: Path | str, actual: str | None = None):
        got = f" (content hashes to {actual})" if actual else ""
        super().__init__(f"blob {digest} is corrupt: {path}{got}", digest)
        self.digest = digest
        self.path = Path(path)
        self.actual = actual


class DigestMismatch(StoreError):
    """Content offered for a put is not what the caller said it was; nothing was stored."""

    def __init__(self, expected: str | None, actual: str | None, *, expected_size: int | None = None,
                 actual_size: int | None = None):
        if expected_size is not None and actual_size is not None and expected_size != actual_size:
            detail = f"expected {expected_size} bytes, got {actual_size}"
            if expected:
                detail = f"{detail} for {expected}"
        else:
            detail = f"expected {expected}, got {actual}"
        super().__init__(f"digest mismatch: {detail}", expected or actual)
        self.expected = expected
        self.actual = actual
        self.expected_size = expected_size
        self.actual_size = actual_size


class RecordNotFound(StoreError):
    """No record of this kind (``"layer"``, ``"image"``) with this key."""

    def __init__(self, kind: str, key: str):
        super().__init__(f"{kind} {key} not found", key)
        self.kind = kind
        self.key = key


class RecordError(StoreError):
    """A record file that does not parse, or a write that contradicts the stored record."""

    def __init__(self, path: Path | str, reason: str):
        super().__init__(f"bad record {path}: {reason}", str(path))
        self.path = Path(path)
        self.reason = reason


class LockTimeout(StoreError):
    """A lock was not acquired within the timeout."""

    def __init__(self, name: str, path: Path | str, timeout: float, holder_pid: int | None = None):
        held = f" held by pid {holder_pid}" if holder_pid else ""
        super().__init__(f"timed out after {timeout:g}s waiting for the {name} ({path}){held}", name)
        self.name = name
        self.path = Path(path)
        self.timeout = timeout
        self.holder_pid = holder_pid
