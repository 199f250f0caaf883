"""Context tarballs: telling one from a Dockerfile by its first bytes, and unpacking it safely.

A stream is an archive when it starts with a gzip, bzip2, xz or zstd magic, or with a valid tar
header (BuildKit's ``isArchive``; zstd is one more than BuildKit reads there). Unpacking goes
through the layer unpacker, so no entry can land outside the target (``..`` refused, symlinks
resolved inside it); modes, owners and mtimes are kept, as BuildKit's untar keeps them.
"""

from __future__ import annotations

import tarfile

from .errors import ContextError

HEAD_SIZE = 1024

_MAGICS = (b"BZh", b"\x1f\x8b\x08", b"\xfd7zXZ\x00", b"\x28\xb5\x2f\xfd")


def is_archive(head: bytes) -> bool:
    if any(head.startswith(m) for m in _MAGICS):
        return True
    if len(head) < 512:
        return False
    try:
        tarfile.TarInfo.frombuf(head[:512], "utf-8", "surrogateescape")
    except (tarfile.HeaderError, ValueError):
        return False
    return True


class Peeked:
    """A reader whose first bytes were already read (to classify it) and are served again."""

    def __init__(self, head: bytes, rest):
        self.head = head
        self.rest = rest

    def read(self, size: int = -1) -> bytes:
        if self.head:
            if size is None or size < 0:
                data, self.head = self.head + self.rest.read(), b""
                return data
            data, self.head = self.head[:size], self.head[size:]
            return data
        return self.rest.read(size)


def peek(stream, size: int = HEAD_SIZE) -> tuple[bytes, Peeked]:
    """The first ``size`` bytes of ``stream`` (fewer at its end) and a reader of all of it."""
    head = b""
    while len(head) < size:
        more = stream.read(size - len(head))
        if not more:
            break
        head += more
    return head, Peeked(head, stream)


def extract(stream, dest: str, *, what: str) -> None:
    """Unpack the (possibly compressed) tar read from ``stream`` into the existing directory ``dest``."""
    from ..errors import LayerError
    from ..fs.unpack import unpack_layer

    try:
        unpack_layer(stream, dest, mode="apply")
    except LayerError as err:
        raise ContextError(f"unable to prepare context: cannot unpack {what}: {err}") from None
