"""Digests computed while bytes stream past, so a layer is hashed in the same pass that writes it.

A layer has two identities (kept apart in every name, as go-containerregistry does): the
``diff_id`` is the sha256 of the *uncompressed* tar (what image configs list and what a local build
needs), the ``digest`` is the sha256 of the blob as stored or pushed (compressed or not). Reading a
1 GiB layer a second time just to hash it would double the I/O, so both are taken on the way through:
``HashingWriter`` sits between the tar writer and the compressor and again between the compressor and
the file; ``HashingReader`` sits between the decompressor and the tar reader.
"""

from __future__ import annotations

import hashlib
import queue
import threading
from dataclasses import dataclass
from typing import Protocol


class Writer(Protocol):
    def write(self, data, /) -> int | None: ...


class Reader(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


def write_all(out: Writer, data) -> None:
    """``out.write(data)`` until all of it is written (raw files and pipes may write less)."""
    n = out.write(data)
    if n is None or n == len(data):
        return
    view = memoryview(data).cast("B")
    while n < len(view):
        m = out.write(view[n:])
        if m is None:
            return
        n += m


def sha256_digest(hasher) -> str:
    return "sha256:" + hasher.hexdigest()


@dataclass(frozen=True, slots=True)
class LayerDigests:
    """What writing a layer produced: the tar's identity and the blob's identity.

    ``digest == diff_id`` and ``compressed_size == size`` when ``compression == "none"``.
    """

    diff_id: str            # "sha256:<hex>" of the uncompressed tar
    size: int               # bytes of the uncompressed tar
    digest: str             # "sha256:<hex>" of the blob written to ``out``
    compressed_size: int    # bytes written to ``out``
    compression: str        # "none" | "gzip" | "zstd"


class HashingWriter:
    """Passes every write on to ``out`` (``None`` to only count) while hashing and counting it.

    ``write`` does not keep a reference to ``data`` after it returns, so callers may reuse buffers.
    """

    __slots__ = ("_out", "_hash", "size")

    def __init__(self, out: Writer | None):
        self._out = out
        self._hash = hashlib.sha256()
        self.size = 0

    def write(self, data) -> int:
        n = len(data)
        self._hash.update(data)
        self.size += n
        if self._out is not None:
            write_all(self._out, data)
        return n

    def flush(self) -> None:
        flush = getattr(self._out, "flush", None)
        if flush is not None:
            flush()

    @property
    def digest(self) -> str:
        return sha256_digest(self._hash)


class HashingReader:
    """Reads ``inp`` in large chunks, hashing and counting everything it pulls, and serves ``read``/
    ``readinto`` from the current chunk; keeps ``tell()`` and allows forward ``seek`` (skipping reads
    and still hashes), which is all ``tarfile`` needs to read an archive it cannot rewind.

    With ``prefetch=True`` a background thread reads (and so decompresses) and hashes the next chunks
    while the caller works on the current one; ``close()`` stops it. The digest covers the whole
    input only after ``drain()`` (e.g. the zero padding after a tar's end marker).
    """

    _DEPTH = 4      # chunks read ahead

    def __init__(self, inp: Reader, chunk_size: int = 1 << 20, *, prefetch: bool = False):
        self._inp = inp
        self._chunk_size = chunk_size
        self._hash = hashlib.sha256()
        self._buf = memoryview(b"")
        self._pos = 0               # offset into _buf
        self._offset = 0            # stream offset of _buf[0]
        self.size = 0               # bytes pulled from inp so far
        self._eof = False
        self._queue: queue.Queue | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if prefetch:
            self._queue = queue.Queue(self._DEPTH)
            self._thread = threading.Thread(target=self._produce, name="layer-reader", daemon=True)
            self._thread.start()

    def _produce(self) -> None:
        try:
            while not self._stop.is_set():
                data = self._inp.read(self._chunk_size)
                if data:
                    self._hash.update(data)
                self._hand_over(data)
                if not data:
                    return
        except BaseException as e:                  # re-raised in the reading thread
            self._hand_over(e)

    def _hand_over(self, item) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def _next_chunk(self) -> bytes:
        if self._queue is None:
            data = self._inp.read(self._chunk_size)
            if data:
                self._hash.update(data)
            return data
        item = self._queue.get()
        if isinstance(item, BaseException):
            self._eof = True
            raise item
        return item

    def _fill(self) -> bool:
        if self._eof:
            return False
        data = self._next_chunk()
        if not data:
            self._eof = True
            return False
        self._offset += len(self._buf)
        self.size += len(data)
        self._buf = memoryview(data)
        self._pos = 0
        return True

    def close(self) -> None:
        """Stop the prefetching thread (if any); the reader is unusable afterwards."""
        if self._thread is not None:
            self._stop.set()
            while True:                             # unblock a producer waiting on a full queue
                try:
                    self._queue.get_nowait()
                except queue.Empty:
                    break
            self._thread.join()
            self._thread = None

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            parts = [bytes(self._buf[self._pos:])]
            self._pos = len(self._buf)
            while self._fill():
                parts.append(bytes(self._buf))
                self._pos = len(self._buf)
            return b"".join(parts)
        avail = len(self._buf) - self._pos
        if size <= avail:
            out = self._buf[self._pos:self._pos + size].tobytes()
            self._pos += size
            return out
        parts = []
        while size > 0:
            avail = len(self._buf) - self._pos
            if avail == 0:
                if not self._fill():
                    break
                avail = len(self._buf)
            take = min(avail, size)
            parts.append(self._buf[self._pos:self._pos + take])
            self._pos += take
            size -= take
        return b"".join(parts)

    def readinto(self, b) -> int:
        view = memoryview(b).cast("B")
        n = 0
        while n < len(view):
            avail = len(self._buf) - self._pos
            if avail == 0:
                if n or not self._fill():   # return what we have rather than block for more
                    break
                avail = len(self._buf)
            take = min(avail, len(view) - n)
            view[n:n + take] = self._buf[self._pos:self._pos + take]
            self._pos += take
            n += take
        return n

    def tell(self) -> int:
        return self._offset + self._pos

    def seek(self, offset: int, whence: int = 0) -> int:
        if whence == 1:
            offset += self.tell()
        elif whence != 0:
            raise OSError("HashingReader only seeks from the start or the current position")
        skip = offset - self.tell()
        if skip < 0:
            raise OSError(f"cannot seek backwards in a stream (to {offset}, at {self.tell()})")
        while skip > 0:
            avail = len(self._buf) - self._pos
            if avail == 0:
                if not self._fill():
                    break
                avail = len(self._buf)
            take = min(avail, skip)
            self._pos += take
            skip -= take
        return self.tell()

    def drain(self) -> None:
        """Read (and hash) everything left, e.g. the zero padding after a tar's end marker."""
        self._pos = len(self._buf)
        while self._fill():
            self._pos = len(self._buf)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    @property
    def digest(self) -> str:
        return sha256_digest(self._hash)
