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


def peek(stream, size: int = HEAD_SIZE):
    """The first ``size`` bytes of ``stream`` (fewer at its end) and a reader of all of it."""
    from ..fs.compress import Prefixed, read_up_to

    head = read_up_to(stream, size)
    return head, Prefixed(head, stream)


def extract(stream, dest: str, *, what: str) -> None:
    """Unpack the (possibly compressed) tar read from ``stream`` into the existing directory ``dest``."""
    from ..errors import LayerError
    from ..fs.unpack import unpack_layer

    try:
        unpack_layer(stream, dest, mode="apply")
    except LayerError as err:
        raise ContextError(f"unable to prepare context: cannot unpack {what}: {err}") from None
