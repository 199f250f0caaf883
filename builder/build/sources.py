"""Read-only file trees a COPY/ADD reads from: a host directory or the merged view of layer snapshots.

Every tree answers the same few questions about '/'-separated paths relative to its root ('' is the
root): ``lstat``, ``listdir``, ``readlink``, ``xattrs`` and ``host_path`` (a real path whose bytes
can be read). Nothing here follows a symlink by itself; ``resolve`` does, the way a chroot would
(``/etc`` in a link means the tree's ``etc``, ``..`` at the root stays there), so no lookup ever
leaves the tree.

* ``DirectoryTree``: a build context (or any host directory). Paths the context's ``.dockerignore``
  excludes are invisible: ``lstat`` says they do not exist and ``listdir`` leaves them out. An
  excluded directory that holds a re-included path (``!dir/keep``) stays visible as the path to it.
  Owners are reset to 0:0 (``owners="reset"``), as docker's client does when it sends a context.
* ``LayeredTree``: overlay lower directories, top layer first, merged as overlayfs merges them:
  a char device 0/0 hides the name below it, a directory with ``trusted.overlay.opaque=y`` hides the
  lower layers' contents, and a directory's contents are merged only down to the first layer where
  the path is not a directory.
"""

from __future__ import annotations

import errno
import os
import stat

from .copyerror import CopyError

_OPAQUE_XATTRS = ("trusted.overlay.opaque", "user.overlay.opaque")
_HIDDEN_XATTR_PREFIXES = ("trusted.overlay.", "user.overlay.", "security.selinux")


class TreeError(CopyError):
    """A path that cannot be looked up in a source tree (a symlink loop)."""


def split(rel: str) -> list[str]:
    return [p for p in rel.split("/") if p and p != "."]


def host_join(root: str, rel: str) -> str:
    """``rel`` (a tree path) below the host directory ``root``."""
    if rel and rel[0] != "/" and rel[-1] != "/" and "//" not in rel and "/./" not in rel \
            and not rel.startswith("./") and rel != ".":
        return f"{root}/{rel}"          # already clean: the common case, kept cheap
    parts = split(rel)
    return os.path.join(root, *parts) if parts else root


def join(parent: str, name: str) -> str:
    return f"{parent}/{name}" if parent else name


def _xattrs_of(path: str) -> dict[str, bytes]:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return {}
    out = {}
    for name in sorted(names):
        if name.startswith(_HIDDEN_XATTR_PREFIXES):
            continue
        try:
            out[name] = os.getxattr(path, name, follow_symlinks=False)
        except OSError:
            continue
    return out


def _not_found(rel: str) -> FileNotFoundError:
    return FileNotFoundError(errno.ENOENT, "no such file or directory", "/" + rel)


class DirectoryTree:
    """A host directory as a source tree, with .dockerignore exclusions applied."""

    keeps_owners = False

    def __init__(self, root: str, *, description: str, ignore=None, owners: str = "reset"):
        self.root = os.path.realpath(root)
        self.description = description
        self.ignore = ignore
        self.keeps_owners = owners == "keep"
        self._visible_dirs: dict[str, bool] = {}

    def _path(self, rel: str) -> str:
        return host_join(self.root, rel)

    def _excluded(self, rel: str) -> bool:
        return bool(rel) and self.ignore is not None and self.ignore.matches(rel)

    def visible(self, rel: str, st: os.stat_result | None = None) -> bool:
        """False for a path the .dockerignore hides (and that leads to nothing it re-includes)."""
        if self.ignore is None or not rel:
            return True
        parts = split(rel)
        for i in range(1, len(parts) + 1):
            sub = "/".join(parts[:i])
            if not self._excluded(sub):
                continue
            if i == len(parts) and st is not None and not stat.S_ISDIR(st.st_mode):
                return False
            if not self._leads_to_included(sub):
                return False
        return True

    def _leads_to_included(self, rel: str) -> bool:
        """An excluded path stays visible only as a directory on the way to a re-included path."""
        found = self._visible_dirs.get(rel)
        if found is not None:
            return found
        result = False
        prunable = getattr(self.ignore, "prunable", None)
        if not (prunable is not None and prunable(rel)):
            path = self._path(rel)
            if os.path.isdir(path) and not os.path.islink(path):
                for entry in sorted(os.scandir(path), key=lambda e: e.name):
                    child = join(rel, entry.name)
                    if not self._excluded(child) or (entry.is_dir(follow_symlinks=False)
                                                     and self._leads_to_included(child)):
                        result = True
                        break
        self._visible_dirs[rel] = result
        return result

    def lstat(self, rel: str) -> os.stat_result:
        st = os.lstat(self._path(rel))
        if not self.visible(rel, st):
            raise _not_found(rel)
        return st

    def listdir(self, rel: str) -> list[str]:
        names = sorted(os.listdir(self._path(rel)))
        if self.ignore is None:
            return names
        out = []
        for name in names:
            child = join(rel, name)
            if not self._excluded(child):
                out.append(name)
                continue
            path = os.path.join(self._path(rel), name)
            if os.path.isdir(path) and not os.path.islink(path) and self._leads_to_included(child):
                out.append(name)
        return out

    def readlink(self, rel: str) -> str:
        return os.readlink(self._path(rel))

    def host_path(self, rel: str) -> str:
        return self._path(rel)

    def xattrs(self, rel: str) -> dict[str, bytes]:
        return _xattrs_of(self._path(rel))

    def owner(self, st: os.stat_result) -> tuple[int, int]:
        return (st.st_uid, st.st_gid) if self.keeps_owners else (0, 0)


class LayeredTree:
    """Overlay lower directories (top first) merged as overlayfs does; read only."""

    keeps_owners = True

    def __init__(self, lower_dirs, *, description: str):
        self.lower_dirs = tuple(str(d) for d in lower_dirs)
        self.description = description

    def _locate(self, rel: str) -> tuple[str, list[str]]:
        """(host path of the topmost entry, the layers whose directory at ``rel`` is merged)."""
        parts = split(rel)
        layers = list(self.lower_dirs)
        top = ""
        for depth, _part in enumerate(parts):
            sub = parts[:depth + 1]
            merged: list[str] = []
            top = ""
            for layer in layers:
                path = os.path.join(layer, *sub)
                try:
                    st = os.lstat(path)
                except (FileNotFoundError, NotADirectoryError):
                    continue
                if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                    break                                   # whiteout: nothing below
                if not stat.S_ISDIR(st.st_mode):
                    if not merged:
                        top = path                          # a non-directory at the top wins
                    break                                   # and ends the merge of a directory
                if not merged:
                    top = path
                merged.append(layer)
                if _is_opaque(path):
                    break
            if not top:
                raise _not_found(rel)
            if depth < len(parts) - 1 and not merged:
                raise FileNotFoundError(errno.ENOTDIR, "not a directory", "/" + "/".join(sub))
            layers = merged
        if not parts:
            return (self.lower_dirs[0] if self.lower_dirs else ""), layers
        return top, layers

    def lstat(self, rel: str) -> os.stat_result:
        if not split(rel) and not self.lower_dirs:
            raise _not_found(rel)
        top, _ = self._locate(rel)
        return os.lstat(top)

    def listdir(self, rel: str) -> list[str]:
        _, layers = self._locate(rel)
        if not layers:
            raise NotADirectoryError(errno.ENOTDIR, "not a directory", "/" + rel)
        seen: set[str] = set()
        out: list[str] = []
        for layer in layers:
            directory = os.path.join(layer, *split(rel))
            for entry in os.scandir(directory):
                if entry.name in seen:
                    continue
                seen.add(entry.name)
                st = entry.stat(follow_symlinks=False)
                if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                    continue
                out.append(entry.name)
        return sorted(out)

    def readlink(self, rel: str) -> str:
        return os.readlink(self._locate(rel)[0])

    def host_path(self, rel: str) -> str:
        return self._locate(rel)[0]

    def xattrs(self, rel: str) -> dict[str, bytes]:
        return _xattrs_of(self._locate(rel)[0])

    def owner(self, st: os.stat_result) -> tuple[int, int]:
        return st.st_uid, st.st_gid


def _is_opaque(path: str) -> bool:
    for name in _OPAQUE_XATTRS:
        try:
            if os.getxattr(path, name, follow_symlinks=False) == b"y":
                return True
        except OSError:
            continue
    return False


def resolve(tree, rel: str, *, follow_final: bool = True) -> str:
    """``rel`` with every symlink on the way resolved inside the tree (the tree's root is ``/``).

    Components that do not exist are kept as written (the caller's lookup then fails or creates
    them). More than 40 links on the way (a loop) raise ``TreeError``.
    """
    from ..fs.safepath import resolve_parts

    def too_many() -> TreeError:
        return TreeError(f'"/{rel.strip("/")}": too many links')

    return "/".join(resolve_parts(rel.split("/"), tree.lstat, tree.readlink, follow_final=follow_final,
                                  too_many=too_many))


def read_text(tree, rel: str) -> str | None:
    """A regular file's text (``/etc/passwd`` for ``--chown``), symlinks resolved inside the tree;
    None when it is missing or no regular file."""
    real = resolve(tree, rel)
    try:
        st = tree.lstat(real)
    except (FileNotFoundError, NotADirectoryError):
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    with open(tree.host_path(real), encoding="utf-8", errors="replace") as fh:
        return fh.read(10 << 20)      # a passwd file, not whatever huge file a link points to


def exists(tree, rel: str) -> bool:
    try:
        tree.lstat(rel)
    except (FileNotFoundError, NotADirectoryError):
        return False
    return True
