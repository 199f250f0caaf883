"""Paths inside a rootfs seen from outside it, with the image's symlinks confined to the rootfs.

Before pivot_root the sandbox mounts onto paths of the merged rootfs, whose symlinks were written by
the image: ``/etc -> /host-etc`` or ``../../..`` must resolve inside the rootfs, never on the host
(what runc's securejoin does).  ``resolve_in_root`` walks the path one component at a time; missing
components are kept lexically so the caller can create them.
"""

from __future__ import annotations

import json
import os
import stat

from .errors import SandboxError

_MAX_LINKS = 255


def resolve_in_root(root: str, path: str) -> str:
    """``root`` joined with ``path``, following symlinks as if ``root`` were ``/``."""
    pending = [p for p in path.split("/") if p][::-1]
    current: list[str] = []
    links = 0
    while pending:
        part = pending.pop()
        if part == ".":
            continue
        if part == "..":
            if current:
                current.pop()
            continue
        candidate = os.path.join(root, *current, part)
        try:
            st = os.lstat(candidate)
        except (FileNotFoundError, NotADirectoryError):
            current.append(part)
            continue
        if stat.S_ISLNK(st.st_mode):
            links += 1
            if links > _MAX_LINKS:
                raise SandboxError(f"too many levels of symbolic links resolving {path}")
            target = os.readlink(candidate)
            if target.startswith("/"):
                current = []
            pending.extend([p for p in target.split("/") if p][::-1])
            continue
        current.append(part)
    return os.path.join(root, *current)


def relative_to(root: str, path: str) -> str:
    """``path`` (under ``root``) as an absolute path inside the rootfs."""
    rel = os.path.relpath(path, root)
    return "/" if rel == "." else "/" + rel


class StubRecorder:
    """Creates missing mount points in the merged rootfs and records each one it created.

    Mount points normally exist already (the image's own, or the sandbox's stub layer below the
    image); a path the image hid with a whiteout or a symlink is created here instead, which lands in
    the upper dir.  The record file is written *before* each creation so the parent can remove every
    stub after the run even if the sandbox is killed half-way.
    """

    def __init__(self, root: str, record_path: str | None):
        self.root = root
        self.record_path = record_path
        self.created: list[str] = []

    def ensure(self, path: str, directory: bool) -> str:
        """The host path of mount point ``path`` inside the rootfs, created if missing."""
        resolved = resolve_in_root(self.root, path)
        if os.path.lexists(resolved):
            if directory and not os.path.isdir(resolved):
                raise SandboxError(f"mount point {path} exists in the image but is not a directory")
            return resolved
        rel = os.path.relpath(resolved, self.root)
        parts = rel.split(os.sep)
        current = self.root
        for i, part in enumerate(parts):
            current = os.path.join(current, part)
            last = i == len(parts) - 1
            if os.path.lexists(current):
                if not os.path.isdir(current) or os.path.islink(current):
                    raise SandboxError(f"cannot create mount point {path}: {relative_to(self.root, current)} "
                                       "is not a directory")
                continue
            self._record(current)
            if last and not directory:
                fd = os.open(current, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_CLOEXEC, 0o644)
                os.close(fd)
            else:
                os.mkdir(current, 0o755)
        return resolved

    def _record(self, host_path: str) -> None:
        rel = relative_to(self.root, host_path)
        self.created.append(rel)
        if self.record_path:
            with open(self.record_path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(rel) + "\n")


def read_stub_record(record_path: str) -> list[str]:
    """The mount stubs a sandbox recorded (absolute paths inside the rootfs), in creation order."""
    out = []
    try:
        with open(record_path, encoding="utf-8") as fh:
            for line in fh:
                try:
                    out.append(json.loads(line))
                except ValueError:      # a line cut short by a kill: the stub was not created either
                    continue
    except FileNotFoundError:
        pass
    return out



def writable_only_by_us(path: str) -> bool:
    """True if ``path`` is (now) a directory only this user can write: code or seccomp programs are
    loaded from it as root, so nobody else may be able to swap them."""
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    except OSError:
        return False
    st = os.lstat(path)
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid() and not st.st_mode & 0o022


__all__ = ["resolve_in_root", "StubRecorder", "read_stub_record", "relative_to"]
