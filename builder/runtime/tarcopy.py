"""Tar streams of ``cp``: written from a tree (numeric owners, xattrs, never following a symlink or
blocking on a fifo) and extracted into one with docker's Untar rules (entries renamed, an existing
non-directory replaced rather than written through, a directory never swapped for a non-directory).
"""

from __future__ import annotations

import os
import stat
import tarfile
from typing import BinaryIO

from .errors import ContainerError


def _check_name(name: str) -> None:
    parts = name.split("/")
    if name.startswith("/") or ".." in parts:
        raise ContainerError(f"invalid path in the archive: {name!r}")


def extract(stream: BinaryIO, dest: str, *, rename=None, owner: tuple[int, int] | None = None,
            keep_owner: bool = True) -> None:
    """Extract a tar stream into ``dest`` as docker's Untar does: entries renamed by ``rename``, an
    existing non-directory replaced (never written through), a directory never replaced by a
    non-directory or the other way round; owners from the archive, ``owner`` for all, or ours."""
    uid, gid = owner if owner is not None else (os.getuid(), os.getgid())
    with tarfile.open(fileobj=stream, mode="r|*") as tar:
        def members():
            for member in tar:
                if rename is not None:
                    member.name = rename(member.name)
                    if member.islnk():
                        member.linkname = rename(member.linkname)
                name = member.name.rstrip("/")
                _check_name(name)
                if member.islnk():
                    _check_name(member.linkname)
                if owner is not None or not keep_owner:
                    member.uid, member.gid = uid, gid
                member.uname = member.gname = ""
                target = os.path.join(dest, name)
                if name not in ("", "."):
                    try:
                        st = os.lstat(target)
                    except FileNotFoundError:
                        st = None
                    except NotADirectoryError:
                        raise ContainerError(f"cannot extract {name}: a parent is not a directory") from None
                    if st is not None:
                        if stat.S_ISDIR(st.st_mode) and not member.isdir():
                            raise ContainerError(f'cannot overwrite directory "{target}" with non-directory '
                                                 f'"{name}"')
                        if not stat.S_ISDIR(st.st_mode) and member.isdir():
                            raise ContainerError(f'cannot overwrite non-directory "{target}" with directory '
                                                 f'"{name}"')
                        if not stat.S_ISDIR(st.st_mode):
                            os.unlink(target)
                yield member

        tar.extractall(dest, members=members(), numeric_owner=True, filter="fully_trusted")


def add_tree(tar: tarfile.TarFile, path: str, arcname: str) -> None:
    """Add ``path`` (not following a final symlink) and everything below it, sorted, with numeric
    owners and the file's xattrs (``security.capability`` ...)."""
    info = tar.gettarinfo(path, arcname)
    if info is None:            # a socket: docker skips those too
        return
    info.uname = info.gname = ""
    xattrs = _xattrs(path)
    if xattrs:
        info.pax_headers = {f"SCHILY.xattr.{k}": v for k, v in xattrs.items()}
    if info.isreg():
        # Not following a symlink, not blocking on a fifo: the container may swap the file meanwhile.
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as fh:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise ContainerError(f"{path} changed while it was being copied")
            tar.addfile(info, fh)
    else:
        tar.addfile(info)
    if info.isdir():
        for name in sorted(os.listdir(path)):
            add_tree(tar, os.path.join(path, name), f"{arcname.rstrip('/')}/{name}")


def _xattrs(path: str) -> dict[str, str]:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return {}
    out = {}
    for name in sorted(names):
        if name.startswith(("trusted.overlay.", "security.selinux")):
            continue
        try:
            out[name] = os.getxattr(path, name, follow_symlinks=False).decode("utf-8", "surrogateescape")
        except OSError:
            continue
    return out


def open_tar_writer(out: BinaryIO) -> tarfile.TarFile:
    return tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT)


def without_name_lookups() -> None:
    # tarfile asks pwd/grp for names; inside the container that would load the container's NSS
    # libraries into this (root, host) process.
    tarfile.pwd = None
    tarfile.grp = None


__all__ = ["add_tree", "extract", "open_tar_writer", "without_name_lookups"]
