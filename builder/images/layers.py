"""Layers in the store, in whatever form is asked for.

A layer is known by its diff_id. The store may hold it as an unpacked snapshot (what overlay mounts
use), as its original blob (compressed or not, kept byte-exact for layers that came from elsewhere),
or both. Our own layers (imported, and later built) are snapshots whose deterministic tar *is* the
layer, so their tar is regenerated on demand and checked against the diff_id instead of being
stored twice. Compressed forms are made when an image leaves the machine and cached by diff_id.
"""

from __future__ import annotations

import os
import shutil
import threading
from contextlib import contextmanager
from typing import BinaryIO, Iterator

from cache.digests import BlobInfo

from ..errors import LayerError
from ..fs.compress import compressor, open_decompressed
from ..fs.digests import HashingReader, HashingWriter
from ..fs.tarwriter import write_tar
from ..fs.unpack import unpack_layer

CHUNK = 1 << 20


class _Pipe:
    """A one-way in-memory pipe: a writer thread produces, the caller reads (bounded memory)."""

    def __init__(self, limit: int = 8):
        self._chunks: list[bytes] = []
        self._cond = threading.Condition()
        self._limit = limit
        self._closed = False
        self._error: BaseException | None = None
        self._buffer = b""
        self._cancelled = False

    def write(self, data) -> int:
        chunk = bytes(data)
        with self._cond:
            while len(self._chunks) >= self._limit and not self._cancelled:
                self._cond.wait()
            if self._cancelled:
                raise BrokenPipeError("reader went away")
            self._chunks.append(chunk)
            self._cond.notify_all()
        return len(chunk)

    def flush(self) -> None:
        pass

    def close(self, error: BaseException | None = None) -> None:
        with self._cond:
            self._closed = True
            self._error = error
            self._cond.notify_all()

    def cancel(self) -> None:
        with self._cond:
            self._cancelled = True
            self._cond.notify_all()

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._buffer) < size:
            with self._cond:
                while not self._chunks and not self._closed:
                    self._cond.wait()
                if self._chunks:
                    self._buffer += b"".join(self._chunks)
                    self._chunks.clear()
                    self._cond.notify_all()
                elif self._closed:
                    if self._error is not None:
                        raise self._error
                    break
        if size < 0:
            data, self._buffer = self._buffer, b""
        else:
            data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data


def _snapshot_tar(store, diff_id: str) -> Iterator[BinaryIO]:
    pipe = _Pipe()
    root = store.snapshot_path(diff_id)

    def produce():
        try:
            write_tar(root, pipe, overlay_whiteouts=True)
        except BrokenPipeError:
            pipe.close()
        except BaseException as err:  # handed to the reader, which raises it
            pipe.close(err)
        else:
            pipe.close()

    thread = threading.Thread(target=produce, name=f"tar {diff_id[7:19]}", daemon=True)
    thread.start()
    return pipe, thread


@contextmanager
def open_layer_tar(store, diff_id: str) -> Iterator[BinaryIO]:
    """The layer's uncompressed tar as a stream; its sha256 is checked against diff_id at the end."""
    record = store.get_layer(diff_id)
    stored = record.blobs.get("tar") or record.blobs.get("gzip") or record.blobs.get("zstd")
    thread = None
    pipe = None
    if stored is not None:
        blob = store.open_blob(stored.digest)
        source, _ = open_decompressed(blob)
    elif record.snapshot:
        pipe, thread = _snapshot_tar(store, diff_id)
        source = pipe
        blob = None
    else:
        raise LayerError(f"layer {diff_id} has neither a stored blob nor a snapshot")
    reader = HashingReader(source, CHUNK)
    try:
        yield reader
        while reader.read(CHUNK):  # the consumer may stop at the tar's end marker: hash the rest
            pass
        if reader.digest != diff_id:
            raise LayerError(f"layer {diff_id}: its contents now hash to {reader.digest} "
                             "(the snapshot or blob was changed on disk)")
    finally:
        if pipe is not None:
            pipe.cancel()
        if thread is not None:
            thread.join()
        if blob is not None:
            blob.close()


def layer_blob(store, diff_id: str, compression: str) -> BlobInfo:
    """The layer as a stored blob in ``compression`` ("tar", "gzip", "zstd"), made and cached if needed."""
    record = store.get_layer(diff_id)
    found = record.blobs.get(compression)
    if found is not None:
        return found
    with store.blob_writer() as out:
        with open_layer_tar(store, diff_id) as tar:
            if compression == "tar":
                shutil.copyfileobj(tar, out, CHUNK)
            else:
                packed = compressor(compression, out)
                try:
                    shutil.copyfileobj(tar, packed, CHUNK)
                except BaseException:
                    packed.abort()
                    raise
                packed.close()
        info = out.commit()
    if compression == "tar" and info.digest != diff_id:
        raise LayerError(f"layer {diff_id}: regenerated tar hashes to {info.digest}")
    store.add_layer_blob(diff_id, compression, info)
    return info


def store_layer_blob(store, stream: BinaryIO, *, expected: str | None = None, compression: str | None = None,
                     snapshot: bool = True) -> tuple[str, BlobInfo, str]:
    """Store a layer blob as given (byte-exact) and unpack its snapshot; return (diff_id, blob, compression).

    The blob is written and hashed while the tar inside it is unpacked and hashed (one read of the
    input): the snapshot is committed only when both are complete.
    """
    with store.blob_writer(expected) as out:
        tee = _Tee(stream, out)
        tmp = store.prepare_snapshot() if snapshot else None
        result = None
        try:
            if snapshot:
                result = unpack_layer(tee, tmp, mode="snapshot", compression=compression)
            else:
                plain, kind = open_decompressed(tee, compression)
                hashed = HashingReader(plain, CHUNK)
                while hashed.read(CHUNK):
                    pass
                result = (hashed.digest, hashed.size, kind)
            while tee.read(CHUNK):  # trailing bytes after the tar's end (padding) belong to the blob
                pass
            info = out.commit()
        except BaseException:
            if tmp is not None:
                store.abort_snapshot(tmp)
            raise
    if snapshot:
        diff_id, size, kind = result.diff_id, result.size, result.compression
    else:
        diff_id, size, kind = result
    name = {"none": "tar"}.get(kind, kind)
    if name not in ("tar", "gzip", "zstd"):
        if tmp is not None:
            store.abort_snapshot(tmp)
        raise LayerError(f"layer blob {info.digest} is {kind}-compressed; OCI layers are tar, gzip or zstd")
    blobs = {name: info}
    store.put_layer(diff_id, size, blobs)  # merges into an existing record (idempotent)
    if tmp is not None:
        store.commit_snapshot(diff_id, tmp)  # discards tmp when another producer published first
    return diff_id, info, name


class _Tee:
    """Reads from ``source`` and copies every byte read into ``sink`` (the blob being stored)."""

    def __init__(self, source: BinaryIO, sink):
        self._source = source
        self._sink = sink

    def read(self, size: int = -1) -> bytes:
        data = self._source.read(size)
        if data:
            self._sink.write(data)
        return data

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)


class _Discard:
    def write(self, data) -> int:
        return len(data)

    def flush(self) -> None:
        pass


def commit_directory(store, directory, *, source_date_epoch: int | None = None,
                     allow_empty: bool = False) -> str | None:
    """Make a filled snapshot directory (from ``store.prepare_snapshot()``) a stored layer.

    The layer is the deterministic tar of the directory (overlay whiteouts in OCI form), hashed
    without being written anywhere: the directory itself becomes the snapshot. With an epoch, times
    later than it are clamped on disk first. An empty directory makes no layer (None; it is removed)
    unless ``allow_empty`` (an imported empty tarball is still a one-layer image).
    """
    directory = str(directory)
    with os.scandir(directory) as entries:
        empty = next(entries, None) is None
    if empty and not allow_empty:
        store.abort_snapshot(directory)
        return None
    try:
        if source_date_epoch is not None:
            clamp_mtimes(directory, source_date_epoch)
        sink = HashingWriter(_Discard())
        write_tar(directory, sink, overlay_whiteouts=True)
        store.put_layer(sink.digest, sink.size)
    except BaseException:
        store.abort_snapshot(directory)
        raise
    store.commit_snapshot(sink.digest, directory)
    return sink.digest


def clamp_mtimes(root: str, epoch: int) -> None:
    """Set every mtime (and atime) later than ``epoch`` to ``epoch``, symlinks included."""
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        for name in filenames + dirnames:
            path = os.path.join(dirpath, name)
            if os.lstat(path).st_mtime > epoch:
                os.utime(path, (epoch, epoch), follow_symlinks=False)
    if os.lstat(root).st_mtime > epoch:
        os.utime(root, (epoch, epoch))


def ensure_snapshot(store, diff_id: str) -> str:
    """The layer's unpacked snapshot directory, unpacking it from its stored blob on first use.

    Loading (and later pulling) stores layer blobs only, as containerd's content store does; the
    snapshot an overlay mount needs is made when a build or a container first uses the layer.
    """
    record = store.get_layer(diff_id)
    if record.snapshot:
        return str(store.snapshot_path(diff_id))
    stored = record.blobs.get("tar") or record.blobs.get("gzip") or record.blobs.get("zstd")
    if stored is None:
        raise LayerError(f"layer {diff_id} has neither a snapshot nor a stored blob")
    tmp = store.prepare_snapshot(diff_id)
    try:
        with store.open_blob(stored.digest) as blob:
            result = unpack_layer(blob, tmp, mode="snapshot")
        if result.diff_id != diff_id:
            raise LayerError(f"layer {diff_id}: its blob {stored.digest} unpacks to {result.diff_id}")
    except BaseException:
        store.abort_snapshot(tmp)
        raise
    store.commit_snapshot(diff_id, tmp)
    return str(store.snapshot_path(diff_id))


def ensure_snapshots(store, diff_ids) -> tuple:
    """Snapshot paths of ``diff_ids`` (bottom first), unpacking any that are missing."""
    return tuple(ensure_snapshot(store, d) for d in diff_ids)


__all__ = ["open_layer_tar", "layer_blob", "store_layer_blob", "ensure_snapshot", "ensure_snapshots",
           "HashingWriter"]
