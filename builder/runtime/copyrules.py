"""``docker cp``'s path rules (moby/go-archive copy.go), as pure functions of paths and stat results.

Where a copy lands depends on the source (file or directory; a trailing ``/.`` means "its contents")
and the destination (exists? a directory? a trailing ``/`` asserts one): ``prepare_copy`` answers
with the directory to extract into and how to rename the archive's entries, or docker's error.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from dataclasses import dataclass

from .errors import ContainerError


def _has_trailing_sep(path: str) -> bool:
    return path.endswith("/")


def specifies_current_dir(path: str) -> bool:
    return os.path.basename(path) == "."


def _asserts_directory(path: str) -> bool:
    return _has_trailing_sep(path) or specifies_current_dir(path)


def clean_path(path: str) -> str:
    """Go's filepath.Clean (one leading slash kept)."""
    cleaned = os.path.normpath(path)
    return "/" + cleaned.lstrip("/") if cleaned.startswith("/") else cleaned


def preserve_trailing(cleaned: str, original: str) -> str:
    """Go's PreserveTrailingDotOrSeparator: cleaning must not lose a final ``/`` or ``/.``."""
    if not specifies_current_dir(cleaned) and specifies_current_dir(original):
        if not cleaned.endswith("/"):
            cleaned += "/"
        cleaned += "."
    if not cleaned.endswith("/") and original.endswith("/"):
        cleaned += "/"
    return cleaned


def split_dir_entry(path: str) -> tuple[str, str]:
    """Go's SplitPathDirEntry: ``/a/b/.`` -> (``/a/b``, ``.``); ``/a/b/`` -> (``/a``, ``b``)."""
    cleaned = clean_path(path)
    if specifies_current_dir(path):
        cleaned += "/."
    return os.path.dirname(cleaned) or ".", os.path.basename(cleaned) or "/"


def go_base(path: str) -> str:
    """Go's filepath.Base (trailing slashes dropped; ``/`` for the root)."""
    stripped = path.rstrip("/")
    if not stripped:
        return "/" if path else "."
    return stripped.rsplit("/", 1)[-1]


def rebaser(old: str, new: str):
    """Go's newNameRebaser: the first path element ``old`` of each entry becomes ``new``."""
    old, new = old.rstrip("/"), new.rstrip("/")
    if not old:
        return lambda name: (new + "/" + name.lstrip("/")) if new else name.lstrip("/")

    def rename(name: str) -> str:
        if not name.startswith(old):
            return name
        suffix = name[len(old):]
        if suffix and not suffix.startswith("/"):
            return name
        return new + suffix
    return rename


@dataclass(frozen=True, slots=True)
class CopyInfo:
    path: str
    exists: bool = False
    is_dir: bool = False
    rebase_name: str = ""


def prepare_copy(src: CopyInfo, dst: CopyInfo) -> tuple[str, Callable[[str], str] | None]:
    """Go's PrepareArchiveCopy: the directory to extract into and how to rename the entries."""
    _, src_base = split_dir_entry(src.path)
    dst_dir, dst_base = split_dir_entry(dst.path)
    if src.rebase_name:
        src_base = src.rebase_name
    if dst.exists and dst.is_dir:
        return dst.path, None
    if dst.exists and src.is_dir:
        raise ContainerError("cannot copy directory")
    if not dst.exists and not src.is_dir and _asserts_directory(dst.path):
        raise ContainerError("no such directory")
    return dst_dir, rebaser(src_base, dst_base)


def host_destination(path: str) -> CopyInfo:
    """Go's CopyInfoDestinationPath on the host: a final symlink is followed (up to 10 times); a
    missing destination needs an existing parent directory."""
    original = path
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        st = None
    hops = 0
    while st is not None and stat.S_ISLNK(st.st_mode):
        hops += 1
        if hops > 11:
            raise ContainerError(f"too many symlinks in {original}")
        target = os.readlink(path)
        if not target.startswith("/"):
            target = os.path.join(split_dir_entry(path)[0], target)
        path = clean_path(target)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            st = None
    if st is None:
        parent = split_dir_entry(path)[0]
        try:
            if not stat.S_ISDIR(os.stat(parent).st_mode):
                raise ContainerError("not a directory")
        except FileNotFoundError:
            raise ContainerError(f"stat {parent}: no such file or directory") from None
        return CopyInfo(path)
    return CopyInfo(path, True, stat.S_ISDIR(st.st_mode))


__all__ = [
    "CopyInfo",
    "clean_path",
    "go_base",
    "host_destination",
    "prepare_copy",
    "preserve_trailing",
    "rebaser",
    "specifies_current_dir",
    "split_dir_entry",
]
