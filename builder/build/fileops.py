"""Filesystem steps done without a sandbox: WORKDIR's mkdir (COPY/ADD: ``copystep``, ``copyops``).

It writes into an overlay upper directory over the step's lower layers. A directory that exists
below and must hold something new is first "copied up" (created in the upper directory with the
lower one's mode, owner, times and xattrs), exactly as overlayfs itself would, so the merged view
keeps its attributes.
"""

from __future__ import annotations

import os
import posixpath
import stat

from .copyerror import CopyError
from .copyops import TRANSFER  # noqa: F401  (the progress seam, re-exported for the executor and UI)


def _find_lower(lowers, rel: str) -> str | None:
    """The path of ``rel`` in the topmost lower layer that has it (whiteouts end the search)."""
    for lower in lowers:
        path = os.path.join(lower, rel)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            continue
        if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
            return None  # a whiteout: deleted in this layer
        return path
    return None


def _copy_up_dir(lower_path: str, target: str) -> None:
    st = os.lstat(lower_path)
    os.mkdir(target, stat.S_IMODE(st.st_mode))
    os.chown(target, st.st_uid, st.st_gid)
    os.chmod(target, stat.S_IMODE(st.st_mode))
    try:
        for name in os.listxattr(lower_path, follow_symlinks=False):
            if name.startswith("trusted.overlay."):
                continue
            os.setxattr(target, name, os.getxattr(lower_path, name, follow_symlinks=False))
    except OSError:
        pass
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))


def ensure_dir(lowers, upper: str, path: str, uid: int = 0, gid: int = 0, mode: int = 0o755) -> str:
    """Make ``path`` (absolute, in the image) a directory in the merged view; return its upper path."""
    parts = [p for p in posixpath.normpath(path).split("/") if p not in ("", ".")]
    rel = ""
    for part in parts:
        rel = posixpath.join(rel, part) if rel else part
        target = os.path.join(upper, rel)
        if os.path.isdir(target) and not os.path.islink(target):
            continue
        lower = _find_lower(lowers, rel)
        if lower is not None and os.path.isdir(lower) and not os.path.islink(lower):
            _copy_up_dir(lower, target)
            continue
        if lower is not None and os.path.islink(lower):
            raise CopyError(f"cannot create directory {path}: /{rel} is a symlink in the image")
        if os.path.lexists(target):
            os.unlink(target)
        os.mkdir(target, mode)
        os.chown(target, uid, gid)
        os.chmod(target, mode)
    return os.path.join(upper, *parts) if parts else upper


def _merged_file(lowers, upper: str, rel: str) -> str | None:
    path = os.path.join(upper, rel)
    if os.path.exists(path):
        return path
    return _find_lower(lowers, rel)


def resolve_owner(lowers, upper: str, user: str) -> tuple[int, int]:
    """USER / --chown names resolved in the image's /etc/passwd and /etc/group (numeric allowed)."""
    if not user:
        return 0, 0
    from ..sandbox.users import resolve_user

    def text(rel):
        found = _merged_file(lowers, upper, rel)
        if found is None:
            return None
        with open(found, encoding="utf-8", errors="replace") as fh:
            return fh.read()

    resolved = resolve_user(user, text("etc/passwd"), text("etc/group"))
    return resolved.uid, resolved.gid


def resolve_chown(lowers, upper: str, chown: str) -> tuple[int, int]:
    """COPY/ADD ``--chown`` as BuildKit's file op reads it: a numeric user (or ``root``) without a
    group gives gid = uid; a name gets its passwd gid; ``:group`` replaces the gid."""
    user, sep, _ = chown.partition(":")
    uid, gid = resolve_owner(lowers, upper, chown)
    if not sep and (user == "root" or (user.isascii() and user.isdigit())):
        gid = uid
    return uid, gid


def make_workdir(lowers, upper: str, path: str, user: str) -> None:
    """WORKDIR: ``mkdir -p`` owned by the current USER (BuildKit does it when the step runs)."""
    if not path or path == "/":
        return
    rel = posixpath.normpath(path).lstrip("/")
    existing = _find_lower(lowers, rel)
    if existing is not None and os.path.isdir(existing):
        return  # nothing changes: no layer
    uid, gid = resolve_owner(lowers, upper, user)
    parent = posixpath.dirname("/" + rel)
    ensure_dir(lowers, upper, parent)
    ensure_dir(lowers, upper, "/" + rel, uid, gid)
