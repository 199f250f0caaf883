"""Writing a step's changes into an overlay upper directory while reading the merged view.

A COPY/ADD step writes into a fresh upper directory over the parent's lower layers, without a mount:
``DestTree`` looks paths up in the merged view (``LayeredTree`` of upper + lowers) and writes only
into the upper directory, doing what overlayfs would: a directory that exists below and must change
is first "copied up" (mode, owner, times, xattrs), a new directory that replaces something whose
lower layers hold a directory is marked opaque, and a path is replaced by removing only its upper
entry (the new entry hides the lower one). Symlinks in destination paths are resolved inside the
image's root, as BuildKit's ``fs.RootPath`` does.
"""

from __future__ import annotations

import os
import shutil
import stat

from .sources import LayeredTree, host_join, resolve, split

_OPAQUE = "trusted.overlay.opaque"


class DestTree:
    def __init__(self, upper: str, lowers):
        self.upper = upper
        self.lowers = tuple(lowers)
        self.merged = LayeredTree((upper, *self.lowers), description="image")
        self.below = LayeredTree(self.lowers, description="image")
        self.fresh: set[str] = set()          # upper dirs with nothing below them (no lookups needed)

    # -- reading --------------------------------------------------------------------------------

    def upper_path(self, rel: str) -> str:
        return host_join(self.upper, rel)

    def _under_fresh(self, rel: str) -> bool:
        parent = rel.rpartition("/")[0]
        return parent in self.fresh

    def lstat(self, rel: str) -> os.stat_result | None:
        try:
            if self._under_fresh(rel):
                return os.lstat(self.upper_path(rel))
            return self.merged.lstat(rel)
        except (FileNotFoundError, NotADirectoryError):
            return None

    def resolve(self, path: str, *, follow_final: bool = True) -> str:
        return resolve(self.merged, path.lstrip("/"), follow_final=follow_final)

    def read_text(self, rel: str) -> str | None:
        """A file of the merged view (``/etc/passwd`` for --chown), symlinks resolved inside the root."""
        from .sources import read_text

        return read_text(self.merged, rel.lstrip("/"))

    # -- writing --------------------------------------------------------------------------------

    def copy_up(self, rel: str) -> None:
        """Make the directory ``rel`` (a directory of the merged view) exist in the upper dir."""
        parts = split(rel)
        for depth in range(1, len(parts) + 1):
            sub = "/".join(parts[:depth])
            target = self.upper_path(sub)
            try:
                st = os.lstat(target)
            except FileNotFoundError:
                st = None
            if st is not None and stat.S_ISDIR(st.st_mode):
                continue
            lower = self.below.lstat(sub)            # must be a directory below
            if not stat.S_ISDIR(lower.st_mode):
                raise NotADirectoryError(20, "not a directory", "/" + sub)
            os.mkdir(target, 0o700)
            os.chown(target, lower.st_uid, lower.st_gid)
            os.chmod(target, stat.S_IMODE(lower.st_mode))
            for name, value in self.below.xattrs(sub).items():
                try:
                    os.setxattr(target, name, value, follow_symlinks=False)
                except OSError:
                    pass
            os.utime(target, ns=(lower.st_atime_ns, lower.st_mtime_ns))

    def clear(self, rel: str) -> None:
        """Remove whatever the upper dir has at ``rel`` (before something new takes the name)."""
        target = self.upper_path(rel)
        try:
            st = os.lstat(target)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            shutil.rmtree(target)
            self.fresh.discard(rel)
        else:
            os.unlink(target)

    def prepare(self, rel: str, *, absent: bool = False) -> str:
        """The upper path where a new entry at ``rel`` is created: parents copied up, old entry gone
        (``absent``: the caller has just looked, the merged view has nothing there)."""
        if not self._under_fresh(rel):
            parent = rel.rpartition("/")[0]
            if parent:
                self.copy_up(parent)
        if not absent:
            self.clear(rel)
        return self.upper_path(rel)

    def mkdir(self, rel: str, mode: int) -> str:
        """A new directory at ``rel`` (nothing of the merged view is there): opaque over a lower one."""
        path = self.prepare(rel)
        os.mkdir(path, 0o700)
        os.chmod(path, mode)
        lower_dir = False
        if not self._under_fresh(rel):
            try:
                lower_dir = stat.S_ISDIR(self.below.lstat(rel).st_mode)
            except (FileNotFoundError, NotADirectoryError):
                lower_dir = False
        if lower_dir:
            os.setxattr(path, _OPAQUE, b"y", follow_symlinks=False)
        else:
            self.fresh.add(rel)
        return path

    def writable_dir(self, rel: str) -> str:
        """The upper path of an existing merged directory, copied up so it can be changed."""
        if rel and not self._under_fresh(rel) and rel not in self.fresh:
            self.copy_up(rel)
        return self.upper_path(rel)

    def mkdir_all(self, path: str, mode: int, owner: tuple[int, int] | None, utime_ns: int | None) -> list[str]:
        """fsutil's MkdirAll: create the missing directories of ``path`` (already resolved); ``mkdir
        PATH: not a directory`` when a component is something else. Returns the ones created."""
        created = []
        parts = split(path)
        for depth in range(1, len(parts) + 1):
            sub = "/".join(parts[:depth])
            st = self.lstat(sub)
            if st is not None and stat.S_ISLNK(st.st_mode):
                # fsutil stats with the link followed: a link to a directory inside the root is fine
                real = resolve(self.merged, sub)
                target = self.lstat(real)
                if target is not None and stat.S_ISDIR(target.st_mode):
                    continue
            if st is not None:
                if stat.S_ISDIR(st.st_mode):
                    continue
                raise NotADirectoryError(20, "not a directory", "/" + sub)
            created_path = self.mkdir(sub, mode)
            if owner is not None:
                os.lchown(created_path, *owner)
                os.chmod(created_path, mode)
            if utime_ns is not None:
                os.utime(created_path, ns=(utime_ns, utime_ns))
            created.append(sub)
        return created
