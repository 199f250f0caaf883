"""A container's files: ``cp`` in and out, ``export`` and ``commit``, with docker's semantics.

``ContainerFiles`` says where a container's files are; ``copy_out``/``copy_in`` follow ``docker cp``
(path rules in ``copyrules``, tar streams in ``tarcopy``), ``export`` writes the flattened rootfs,
``commit`` (in ``commit``) makes the writable layer an image layer.  Everything that touches the
container's tree runs in a worker chrooted into it (``fsworker``): symlinks never lead out.
Host-side work (the tar of a host source, extracting onto the host) stays in the caller.
"""

from __future__ import annotations

import os
import stat
import sys
import tarfile
from dataclasses import dataclass
from typing import BinaryIO

from .commit import commit
from .copyrules import (
    CopyInfo,
    clean_path,
    go_base,
    host_destination,
    prepare_copy,
    preserve_trailing,
    rebaser,
    specifies_current_dir,
    split_dir_entry,
)
from .errors import ContainerError
from .fsworker import read_from, run_job, write_to
from .tarcopy import add_tree, extract, open_tar_writer

_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class FileMount:
    """A host directory or file the container sees at ``target`` (a volume, a bind mount)."""

    source: str
    target: str
    readonly: bool = False


@dataclass(frozen=True, slots=True)
class ContainerFiles:
    """Where a container's files are: its image's layer snapshots (``lower_dirs``, top first), its
    writable layer, and the pid of its running process (``None`` when stopped; ``start_time`` from
    ``enter.process_start_time`` guards against a reused pid).  ``name`` is used in messages.
    ``mounts``: its volumes and bind mounts, which ``cp`` reaches in a stopped container too (as
    docker's does; a running one shows them anyway); ``export`` leaves them out."""

    lower_dirs: tuple[str, ...]
    upper_dir: str
    work_dir: str
    pid: int | None = None
    name: str = ""
    start_time: int | None = None
    mounts: tuple[FileMount, ...] = ()

    def __post_init__(self):
        for name in ("lower_dirs", "mounts"):
            if not isinstance(getattr(self, name), tuple):
                object.__setattr__(self, name, tuple(getattr(self, name)))

    @property
    def label(self) -> str:
        return f" in container {self.name}" if self.name else " in the container"


def _container_path(path: str) -> str:
    if not path:
        raise ContainerError("destination can not be empty")
    return preserve_trailing(clean_path(os.path.join("/", path)), path)


def stat_path(view: ContainerFiles, path: str) -> dict:
    """lstat of ``path`` in the container (symlinks before the last element resolved inside it)."""
    return run_job(view, {"op": "stat", "path": _container_path(path)})["stat"]


def _copy_stream(src: BinaryIO, dst: BinaryIO) -> None:
    while chunk := src.read(_CHUNK):
        dst.write(chunk)
    dst.flush()


@dataclass(frozen=True, slots=True)
class CopyStats:
    """What ``docker cp`` reports: the content's size and the bytes of tar that crossed over."""

    content: int
    transferred: int

    def summary(self, dest: str) -> str:
        """docker's closing line (on stderr): ``Successfully copied 2.05kB to /tmp/x``."""
        if self.content != self.transferred:
            return (f"Successfully copied {human_size(self.content)} (transferred {human_size(self.transferred)}) "
                    f"to {dest}")
        return f"Successfully copied {human_size(self.content)} to {dest}"


def human_size(size: float) -> str:
    """go-units' HumanSizeWithPrecision(size, 3): decimal units, three significant digits."""
    units = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")
    index = 0
    while size >= 1000 and index < len(units) - 1:
        size /= 1000
        index += 1
    return f"{size:.3g}{units[index]}"


def copy_out(view: ContainerFiles, path: str, dest: str, *, follow_link: bool = False,
             stdout: BinaryIO | None = None) -> CopyStats:
    """``docker cp CONTAINER:path dest``: ``dest`` a host path, or ``-`` for a tar stream on
    ``stdout`` (default: this process's).  Files on the host get the caller's uid/gid, as docker's.
    Returns the sizes docker's summary line shows."""
    if not path:
        raise ContainerError("source can not be empty")
    src_path = _container_path(path)
    info = stat_path(view, src_path)
    if not info["exists"]:
        raise ContainerError(f"Could not find the file {path}{view.label}")
    rebase_name = ""
    if follow_link and info["is_link"]:
        target = info["link"]
        if not target.startswith("/"):
            target = os.path.join(split_dir_entry(src_path)[0], target)
        resolved = clean_path(target)
        if specifies_current_dir(src_path) and not specifies_current_dir(resolved):
            resolved += "/."
        if src_path.endswith("/") and not resolved.endswith("/"):
            resolved += "/"
        if go_base(src_path) != go_base(resolved):
            rebase_name = go_base(src_path)
        src_path = resolved
        info = stat_path(view, src_path)
        if not info["exists"]:
            raise ContainerError(f"Could not find the file {path}{view.label}")
    job = {"op": "tar", "path": src_path}
    if dest == "-":
        out = stdout if stdout is not None else sys.stdout.buffer
        if rebase_name:
            sent = read_from(view, job, lambda pipe: _rebase_stream(pipe, out, go_base(src_path), rebase_name))
        else:
            sent = read_from(view, job, lambda pipe: _copy_stream(pipe, out))
        return CopyStats(sent, sent)
    dest = os.path.abspath(dest) + ("/" if dest.endswith("/") and dest != "/" else "")
    src = CopyInfo(src_path, True, info["is_dir"], rebase_name)
    dst = host_destination(dest)
    dst_dir, rename = prepare_copy(src, dst)
    if rebase_name:
        first = rebaser(split_dir_entry(src_path)[1], rebase_name)
        rename = (lambda name: rename_after(first(name))) if (rename_after := rename) else first
    sent = read_from(view, job, lambda pipe: extract(pipe, dst_dir, rename=rename, keep_owner=False))
    return CopyStats(sent if info["is_dir"] else info["size"], sent)


def _rebase_stream(src: BinaryIO, out: BinaryIO, old: str, new: str) -> None:
    rename = rebaser(old, new)
    with tarfile.open(fileobj=src, mode="r|") as tin, tarfile.open(fileobj=out, mode="w|",
                                                                   format=tarfile.PAX_FORMAT) as tout:
        for member in tin:
            member.name = rename(member.name)
            if member.islnk():
                member.linkname = rename(member.linkname)
            tout.addfile(member, tin.extractfile(member) if member.isreg() else None)
    out.flush()


def copy_in(view: ContainerFiles, src: str, path: str, *, archive: bool = False, user: str = "",
            follow_link: bool = False, stdin: BinaryIO | None = None) -> CopyStats:
    """``docker cp src CONTAINER:path``: ``src`` a host path, or ``-`` for a tar stream read from
    ``stdin`` (default: this process's) and extracted into the directory ``path``.

    As with docker (moby's defaultTarCopyOptions, whatever its docs say), files keep the owners they
    have on the host (or in the ``-`` archive); with ``archive`` (``-a``) they belong to the
    container's configured ``user`` (resolved in its /etc/passwd and /etc/group) if it has one.
    Returns the sizes docker's summary line shows.
    """
    if not src:
        raise ContainerError("source can not be empty")
    dst_path = _container_path(path)
    info = stat_path(view, dst_path)
    dst = CopyInfo(dst_path)
    if info["exists"] and info["is_link"]:
        target = info["link"]
        if not target.startswith("/"):
            target = os.path.join(split_dir_entry(dst_path)[0], target)
        dst = CopyInfo(clean_path(target))
        info = stat_path(view, dst.path)
    if info["exists"]:
        mode = info["mode"]
        if not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
            raise ContainerError(f'destination "{view.name}:{path}" must be a directory or a regular file')
        dst = CopyInfo(dst.path, True, stat.S_ISDIR(mode))
    job = {"op": "untar", "user": user if archive else ""}
    if src == "-":
        if not dst.is_dir:
            raise ContainerError(f'destination "{view.name}:{path}" must be a directory')
        source = stdin if stdin is not None else sys.stdin.buffer
        sent = write_to(view, dict(job, path=dst.path), lambda pipe: _copy_stream(source, pipe), writable=True)
        return CopyStats(sent, sent)
    host_src = os.path.abspath(src) + ("/." if specifies_current_dir(src) else "/" if src.endswith("/") else "")
    resolved, rebase_name = _host_source(host_src, follow_link)
    try:
        st = os.stat(resolved) if resolved.endswith(("/", "/.")) else os.lstat(resolved)
    except FileNotFoundError:
        raise ContainerError(f"lstat {resolved.rstrip('/')}: no such file or directory") from None
    except NotADirectoryError:
        raise ContainerError("not a directory") from None
    src_info = CopyInfo(resolved, True, stat.S_ISDIR(st.st_mode), rebase_name)
    dst_dir, rename = prepare_copy(src_info, dst)
    src_dir, src_base = split_dir_entry(resolved)
    first = rebase_name or src_base
    final = rename(first) if rename is not None else first

    source_path = os.path.join(src_dir, src_base) if src_base != "." else src_dir

    def produce(pipe):
        with open_tar_writer(pipe) as tar:
            add_tree(tar, source_path, final)

    sent = write_to(view, dict(job, path=dst_dir), produce, writable=True)
    return CopyStats(_content_size(source_path), sent)


def _content_size(path: str) -> int:
    """docker's localContentSize: the sizes of the regular files at or below ``path``."""
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode):
        return st.st_size if stat.S_ISREG(st.st_mode) else 0
    total = 0
    for dirpath, _, filenames in os.walk(path):
        for name in filenames:
            file_st = os.lstat(os.path.join(dirpath, name))
            if stat.S_ISREG(file_st.st_mode):
                total += file_st.st_size
    return total


def _host_source(path: str, follow_link: bool) -> tuple[str, str]:
    """Go's ResolveHostSourcePath: symlinks before the last element resolved; the last one too with
    ``follow_link`` (the entries then keep the name asked for)."""
    if follow_link:
        resolved = os.path.realpath(path)
        if specifies_current_dir(path) and not specifies_current_dir(resolved):
            resolved += "/."
        if path.endswith("/") and not resolved.endswith("/"):
            resolved += "/"
        return resolved, go_base(path) if go_base(path) != go_base(resolved) else ""
    dirname, base = split_dir_entry(path)
    resolved = os.path.join(os.path.realpath(dirname), base)
    if path.endswith("/"):
        resolved += "/"
    return resolved, ""


def export(view: ContainerFiles, out: BinaryIO) -> None:
    """``docker export``: the container's filesystem (image layers + writable layer, no volumes or
    /proc) flattened into one tar on ``out``."""
    read_from(view, {"op": "export"}, lambda pipe: _copy_stream(pipe, out), rootfs_only=True)


__all__ = ["ContainerFiles", "CopyInfo", "CopyStats", "FileMount", "commit", "copy_in", "copy_out", "export", "extract",
           "human_size", "prepare_copy", "stat_path"]
