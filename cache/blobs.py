"""Content-addressed blobs: ``blobs/sha256/<hex>``, written through ``tmp/``, verified on every read.

A blob becomes visible only by ``rename`` of a complete, fsynced temp file whose bytes were hashed
while they were written, so no reader ever sees a partial or unverified blob under ``blobs/``.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path
from typing import BinaryIO, Callable, Iterable, Union

from .digests import CHUNK, BlobInfo, digest_hex, is_digest
from .errors import BlobNotFound, CorruptBlob, DigestMismatch
from .fsutil import fsync_dir
from .locks import StoreLocks
from .paths import Layout
from .tempfiles import OwnedEntry, create_file

BlobSource = Union[bytes, bytearray, memoryview, BinaryIO, Iterable[bytes]]
Expected = Union[str, BlobInfo, None]


def _split_expected(expected: Expected) -> tuple[str | None, int | None]:
    if expected is None:
        return None, None
    if isinstance(expected, BlobInfo):
        return expected.digest, expected.size
    digest_hex(expected)
    return expected, None


class BlobWriter:
    """Streams one blob into ``tmp/``: ``write()`` pieces, then ``commit()`` -> ``BlobInfo``.

    Used as a context manager: leaving the block without ``commit()`` (or by an exception) removes the
    temp file. With an expected size, writing past it fails at once (a producer that never stops
    cannot fill the disk).
    """

    def __init__(self, blobs: "BlobStore", expected: Expected = None):
        self._blobs = blobs
        self._want_digest, self._want_size = _split_expected(expected)
        with blobs.locks.shared():  # create + flock under the store lock: the sweep cannot catch us between
            self._entry: OwnedEntry | None = create_file(blobs.layout.tmp, "blob")
        self._file = open(self._entry.fd, "wb", buffering=CHUNK, closefd=False)
        self._hash = hashlib.sha256()
        self._size = 0
        self.info: BlobInfo | None = None

    @property
    def size(self) -> int:
        """Bytes written so far."""
        return self._size

    @property
    def temp_path(self) -> Path | None:
        return self._entry.path if self._entry else None

    def write(self, data: bytes | bytearray | memoryview) -> int:
        if self._entry is None:
            raise ValueError("blob writer is closed")
        n = len(data)
        if self._want_size is not None and self._size + n > self._want_size:
            self.abort()
            raise DigestMismatch(self._want_digest, None, expected_size=self._want_size,
                                 actual_size=self._size + n)
        self._hash.update(data)
        self._file.write(data)
        self._size += n
        return n

    def commit(self) -> BlobInfo:
        """Check the content against the expectation, make it durable and publish it; idempotent."""
        if self.info is not None:
            return self.info
        if self._entry is None:
            raise ValueError("blob writer was aborted")
        digest = "sha256:" + self._hash.hexdigest()
        if (self._want_digest and digest != self._want_digest) or (
                self._want_size is not None and self._size != self._want_size):
            self.abort()
            raise DigestMismatch(self._want_digest, digest, expected_size=self._want_size,
                                 actual_size=self._size)
        try:
            self._file.flush()
            os.fsync(self._entry.fd)
            self._file.close()
            info = BlobInfo(digest, self._size)
            self._blobs._publish(self._entry.path, info)
        except BaseException:
            self.abort()
            raise
        self._entry.release()
        self._entry = None
        self.info = info
        return info

    def abort(self) -> None:
        """Remove the temp file (nothing was published); safe to call more than once."""
        entry, self._entry = self._entry, None
        if entry is not None:
            try:
                self._file.close()
            except OSError:
                pass
            entry.discard()

    def __enter__(self) -> "BlobWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.info is None:
            self.abort()


class BlobReader(io.RawIOBase):
    """A blob opened for reading that hashes what it returns.

    When the last byte has been read, the digest is checked and ``CorruptBlob`` is raised on mismatch,
    so a consumer that reads to the end has read verified bytes. Closing early skips the check.
    """

    def __init__(self, path: Path, digest: str):
        super().__init__()
        self.path = path
        self.digest = digest
        try:
            self._f = open(path, "rb", buffering=0)
        except FileNotFoundError:
            raise BlobNotFound(digest) from None
        self.size = os.fstat(self._f.fileno()).st_size
        self._hash = hashlib.sha256()
        self._read = 0
        self._verified = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = self._f.readinto(buffer)
        if n:
            if self._verified:  # the file grew after it was verified
                raise CorruptBlob(self.digest, self.path)
            self._hash.update(memoryview(buffer)[:n])
            self._read += n
        if not self._verified and len(buffer) and (n == 0 or self._read >= self.size):
            self._verify()
        return n

    def readall(self) -> bytes:
        chunks = []
        while chunk := self.read(CHUNK):
            chunks.append(chunk)
        return b"".join(chunks)

    def _verify(self) -> None:
        actual = "sha256:" + self._hash.hexdigest()
        if actual != self.digest:
            raise CorruptBlob(self.digest, self.path, actual)
        self._verified = True

    def close(self) -> None:
        if not self.closed:
            self._f.close()
        super().close()


class BlobStore:
    """Put, read and verify blobs; ``retain`` is called (under the store lock) with each published digest."""

    def __init__(self, layout: Layout, locks: StoreLocks, retain: Callable[[str], None] = lambda d: None):
        self.layout = layout
        self.locks = locks
        self._retain = retain

    def path(self, digest: str) -> Path:
        return self.layout.blob_path(digest)

    def has(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def info(self, digest: str) -> BlobInfo:
        try:
            return BlobInfo(digest, os.stat(self.path(digest)).st_size)
        except FileNotFoundError:
            raise BlobNotFound(digest) from None

    def writer(self, expected: Expected = None) -> BlobWriter:
        return BlobWriter(self, expected)

    def put(self, source: BlobSource, expected: Expected = None) -> BlobInfo:
        """Store ``source`` (bytes, a binary file object or an iterable of chunks); idempotent.

        With an expected digest, an existing blob that verifies is kept and the source is not read; the
        write itself runs under the digest's key lock so concurrent puts of it do the work once.
        Bytes are hashed first, so putting bytes always takes that path.
        """
        want_digest, want_size = _split_expected(expected)
        if isinstance(source, (bytes, bytearray, memoryview)):
            actual = "sha256:" + hashlib.sha256(source).hexdigest()
            if (want_digest and actual != want_digest) or (want_size is not None and want_size != len(source)):
                raise DigestMismatch(want_digest, actual, expected_size=want_size, actual_size=len(source))
            expected, want_digest = BlobInfo(actual, len(source)), actual
        if want_digest is None:
            return self._write(source, expected)
        existing = self._existing(want_digest, want_size)
        if existing:
            return existing
        with self.locks.key("blob", digest_hex(want_digest)):
            return self._existing(want_digest, want_size) or self._write(source, expected)

    def _existing(self, digest: str, size: int | None) -> BlobInfo | None:
        """The stored blob if present, of the right size and verified (and retained), else None."""
        path = self.path(digest)
        try:
            if size is not None and os.stat(path).st_size != size:
                return None
            info = self.verify(digest)
        except (FileNotFoundError, BlobNotFound, CorruptBlob):
            return None
        with self.locks.shared():
            if not path.is_file():  # collected between the check and the lock
                return None
            self._retain(digest)
        return info

    def _write(self, source: BlobSource, expected: Expected) -> BlobInfo:
        with self.writer(expected) as w:
            if isinstance(source, (bytes, bytearray, memoryview)):
                view = memoryview(source)
                for i in range(0, len(view), CHUNK):
                    w.write(view[i:i + CHUNK])
            elif hasattr(source, "readinto"):
                buf = bytearray(CHUNK)
                view = memoryview(buf)
                while n := source.readinto(buf):  # type: ignore[union-attr]
                    w.write(view[:n])
            elif hasattr(source, "read"):
                while chunk := source.read(CHUNK):  # type: ignore[union-attr]
                    w.write(chunk)
            else:
                for chunk in source:  # type: ignore[union-attr]
                    w.write(chunk)
            return w.commit()

    def _publish(self, temp: Path, info: BlobInfo) -> None:
        """Rename a complete, fsynced temp file into place (replacing an equal blob is harmless)."""
        with self.locks.shared():
            os.rename(temp, self.path(info.digest))
            fsync_dir(self.layout.blobs)
            self._retain(info.digest)

    def open(self, digest: str) -> BlobReader:
        return BlobReader(self.path(digest), digest)

    def read(self, digest: str) -> bytes:
        path = self.path(digest)
        try:
            with open(path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            raise BlobNotFound(digest) from None
        actual = "sha256:" + hashlib.sha256(data).hexdigest()
        if actual != digest:
            raise CorruptBlob(digest, path, actual)
        return data

    def verify(self, digest: str) -> BlobInfo:
        """Hash the stored blob; ``BlobInfo`` if it matches its name, else ``CorruptBlob``."""
        path = self.path(digest)
        h = hashlib.sha256()
        buf = bytearray(CHUNK)
        view = memoryview(buf)
        size = 0
        try:
            with open(path, "rb", buffering=0) as f:
                while n := f.readinto(buf):
                    h.update(view[:n])
                    size += n
        except FileNotFoundError:
            raise BlobNotFound(digest) from None
        actual = "sha256:" + h.hexdigest()
        if actual != digest:
            raise CorruptBlob(digest, path, actual)
        return BlobInfo(digest, size)

    def digests(self) -> list[str]:
        """Digests of every stored blob (names only; not verified)."""
        try:
            names = os.listdir(self.layout.blobs)
        except FileNotFoundError:
            return []
        return [d for d in ("sha256:" + n for n in names) if is_digest(d)]

    def require(self, info: BlobInfo) -> None:
        """Check that ``info`` names a stored blob of that size (before a record refers to it)."""
        try:
            size = os.stat(self.path(info.digest)).st_size
        except FileNotFoundError:
            raise BlobNotFound(info.digest) from None
        if size != info.size:
            raise DigestMismatch(info.digest, info.digest, expected_size=info.size, actual_size=size)
