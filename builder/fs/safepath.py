"""Joining untrusted paths onto a root directory so that the result can never leave it.

A layer is a root filesystem *fragment*: its symlinks are meant to be read as a container would
read them, i.e. as if the root were ``/`` (chroot semantics). ``/etc`` in a symlink target means
``<root>/etc``, and ``..`` at the root stays at the root. ``resolve`` walks a path one component at a
time in user space, reading every symlink it meets and restarting from the root for absolute
targets, so every directory in the result has been checked to be a real directory below the root.
That is the guarantee the unpacker builds on: all its writes go to paths returned from here.

Two policies live here too, because they decide what a *tar entry name* may say:

* ``clean_name`` strips a leading ``/`` (an absolute name is read relative to the root, as GNU tar,
  Docker and containerd do) and **rejects** any ``..`` component. No layer writer emits ``..``;
  a name with one is either broken or an attack, and containing it (as containerd does) would put
  the file somewhere its author did not name.
* too many symlinks while resolving (a loop, or a chain longer than Linux's 40) is rejected.

The check is free of races only while nobody else changes the tree, which holds for an unpack target
that only the unpacker writes to.
"""

from __future__ import annotations

import os
import stat

from builder.errors import UnsafeLayerError

MAX_SYMLINKS = 40  # Linux's limit for one path lookup (ELOOP)


def split_name(name: str) -> list[str]:
    """A tar entry name as its list of components (no ``.``, no empty parts, leading ``/`` dropped).

    Raises ``UnsafeLayerError`` for ``..`` components and NUL bytes.
    """
    if "\x00" in name:
        raise UnsafeLayerError(f"layer entry {name!r} contains a NUL byte", path=name)
    parts = [p for p in name.split("/") if p and p != "."]
    if ".." in parts:
        raise UnsafeLayerError(f"layer entry {name!r} has a '..' component, which could escape the target",
                               path=name)
    return parts


def clean_name(name: str) -> str:
    """The canonical relative form of a tar entry name: ``"/a/./b/"`` -> ``"a/b"``; ``""`` is the root."""
    return "/".join(split_name(name))


def resolve_parts(parts: list[str], lstat, readlink, *, follow_final: bool, too_many) -> list[str]:
    """Chroot-style symlink resolution over any tree: the components of ``parts`` with every symlink
    on the way resolved as if the tree's root were ``/`` (``..`` at the root stays there).

    ``lstat(rel)`` / ``readlink(rel)`` look a '/'-joined relative path up in the tree. Components that
    do not exist are appended literally (a lookup then fails, or creation happens there); the last one
    is followed only with ``follow_final``. More than ``MAX_SYMLINKS`` links raise ``too_many()``.
    """
    resolved: list[str] = []            # components below root, each a real directory (or absent)
    pending = list(reversed(parts))     # a stack: the next component is pending[-1]
    links = 0
    missing = False                     # below a missing directory nothing can be a symlink
    while pending:
        part = pending.pop()
        if part == "." or not part:
            continue
        if part == "..":
            if resolved:
                resolved.pop()
            missing = False             # back in a directory that exists: check components again
            continue
        if missing or (not pending and not follow_final):
            resolved.append(part)
            continue
        candidate = "/".join(resolved + [part])
        try:
            st = lstat(candidate)
        except (FileNotFoundError, NotADirectoryError):
            # absent, or a regular file used as a directory: a lookup or creation below fails clearly
            missing = True
            resolved.append(part)
            continue
        if not stat.S_ISLNK(st.st_mode):
            resolved.append(part)
            continue
        links += 1
        if links > MAX_SYMLINKS:
            raise too_many()
        target = readlink(candidate)
        if target.startswith("/"):
            resolved.clear()
        pending.extend(reversed(target.split("/")))
    return resolved


def resolve(root: str, parts: list[str], *, follow_final: bool = False, entry: str | None = None) -> str:
    """The real location of ``parts`` below ``root``, with symlinks resolved inside ``root``.

    ``root`` must be an absolute path without symlinks (``os.path.realpath`` it once). Components that
    do not exist yet are appended literally (they will be created there). The last component is
    left as is unless ``follow_final`` (a tar entry replaces a symlink, it does not write through it).
    ``entry`` names the tar entry in errors.
    """
    def too_many() -> UnsafeLayerError:
        name = entry if entry is not None else "/".join(parts)
        return UnsafeLayerError(f"layer entry {name!r}: too many levels of symbolic links while resolving it "
                                f"inside the target", path=name)

    resolved = resolve_parts(parts, lambda rel: os.lstat(os.path.join(root, rel)),
                             lambda rel: os.readlink(os.path.join(root, rel)), follow_final=follow_final,
                             too_many=too_many)
    return os.path.join(root, *resolved) if resolved else root


def safe_join(root: str, name: str, *, follow_final: bool = False) -> str:
    """``clean_name`` + ``resolve``: where tar entry ``name`` lands below ``root``."""
    return resolve(root, split_name(name), follow_final=follow_final, entry=name)
