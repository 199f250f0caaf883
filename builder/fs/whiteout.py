"""Whiteouts: how a layer says "this path is gone", in the two dialects we translate between.

OCI layer tars (image-spec ``layer.md``) use marker *entries*:

* ``dir/.wh.name``      -- ``dir/name`` from lower layers is deleted;
* ``dir/.wh..wh..opq``  -- ``dir`` is opaque: everything lower layers put in it is hidden.

Overlayfs upper/lower directories use marker *inodes*:

* a character device with device number 0/0 at ``dir/name`` hides ``name`` from lower dirs;
* a directory carrying the xattr ``trusted.overlay.opaque=y`` hides the lower dirs' contents.

The tar writer turns the overlay form into the OCI form (``overlay_whiteouts=True``) and the unpacker
turns the OCI form into the overlay form (``mode="snapshot"``) or applies it (``mode="apply"``). Both
ask this module, so the conventions live in one place.

Overlay-internal xattrs (``trusted.overlay.*``, and ``user.overlay.*`` used by ``userxattr`` mounts)
describe one overlay mount's bookkeeping (origin file handles, redirects, metacopy); they never go
into a layer and are never restored from one, since a hostile layer could otherwise steer overlayfs.
"""

from __future__ import annotations

import os
import stat

PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
OVERLAY_OPAQUE_XATTR = "trusted.overlay.opaque"
_OVERLAY_XATTR_PREFIXES = ("trusted.overlay.", "user.overlay.")
# Overlay features that leave the upper dir *incomplete* (data or children live in a lower dir):
# a layer captured from such a tree would be wrong, so the writer refuses it.
INCOMPLETE_UPPER_XATTRS = ("trusted.overlay.redirect", "trusted.overlay.metacopy")

PREFIX_B = PREFIX.encode()
OPAQUE_MARKER_B = OPAQUE_MARKER.encode()


def is_overlay_xattr(name: str) -> bool:
    """True for overlayfs bookkeeping xattrs, which are neither written to nor restored from layers."""
    return name.startswith(_OVERLAY_XATTR_PREFIXES)


# -- OCI form ------------------------------------------------------------------------------------

def is_opaque_marker(basename: str) -> bool:
    return basename == OPAQUE_MARKER


def whited_out_name(basename: str) -> str | None:
    """``.wh.foo`` -> ``foo``; ``None`` for names that are not whiteouts (and for the opaque marker)."""
    if basename.startswith(PREFIX) and basename != OPAQUE_MARKER:
        name = basename[len(PREFIX):]
        return name or None
    return None


def oci_whiteout_name(basename: bytes) -> bytes:
    """The OCI marker name that deletes ``basename`` (bytes, as the writer handles names)."""
    return PREFIX_B + basename


# -- overlay form --------------------------------------------------------------------------------

def is_overlay_whiteout(st: os.stat_result) -> bool:
    """A character device 0/0 is an overlayfs whiteout."""
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def is_overlay_opaque(path: str | bytes) -> bool:
    """True when a directory carries ``trusted.overlay.opaque=y``."""
    try:
        return os.getxattr(path, OVERLAY_OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:
        return False


def make_overlay_whiteout(path: str) -> None:
    """Create the overlay whiteout inode (char 0/0, root-owned) at ``path``; needs CAP_MKNOD."""
    os.mknod(path, stat.S_IFCHR | 0o000, os.makedev(0, 0))


def mark_overlay_opaque(path: str) -> None:
    """Mark a directory opaque for overlayfs; needs CAP_SYS_ADMIN (``trusted.*`` xattrs)."""
    os.setxattr(path, OVERLAY_OPAQUE_XATTR, b"y", follow_symlinks=False)
