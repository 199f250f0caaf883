"""``pybuild build --output``: where a build's result goes, with docker buildx's syntax and rules.

An output is CSV ``key=value`` fields (``type=local,dest=out``); a lone value without ``type=`` is a
directory (``-o out`` = ``type=local,dest=out``) and ``-o -`` is the rootfs tar on stdout. Types:

* ``image`` (the default): the local store, under the ``-t`` names (and any ``name=``); with
  ``push=true`` (or ``type=registry``, or ``build --push``) each name is also pushed to its registry;
* ``docker`` / ``oci``: an image archive file (docker-archive / OCI layout tar, as ``pybuild save``
  writes them) holding the image under its names; ``docker`` without ``dest`` loads into the store,
  as buildx loads into the daemon;
* ``local``: the final stage's root filesystem as files in a directory; ``tar``: the same as one tar.

As BuildKit does, ``local``/``tar`` export the target stage's whole rootfs (its base image's layers
included, nothing of other stages), ``oci``/``tar`` without ``dest`` write to stdout, stdout is
refused when it is a terminal, and only one output may use it. When no output puts the image in the
store, the store is left as docker leaves its image list: nothing tagged, no new untagged image
(the layers stay, as build cache).

Files appear complete or not at all: a tar is written to a temp file beside ``dest`` and renamed; a
directory is assembled beside ``dest`` and renamed into place (or merged into an existing ``dest``,
entry by entry, as BuildKit's local exporter overwrites what is there).
"""

from __future__ import annotations

import csv
import os
import shutil
import stat
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from typing import BinaryIO

from ..errors import PybuildError, UsageError

TYPES = ("image", "docker", "oci", "local", "tar")   # and "registry" (type=image,push=true)
# attributes each type understands besides ``type`` (``dest`` where it writes somewhere)
_KNOWN = {"image": ("name", "push"), "docker": ("dest", "name", "tar"), "oci": ("dest", "name", "tar"),
          "local": ("dest",), "tar": ("dest",)}
_TRUE, _FALSE = ("1", "t", "true"), ("0", "f", "false")


class OutputError(PybuildError):
    """Writing an output failed (the destination, not the build): names the --output value."""


@dataclass(frozen=True)
class Output:
    type: str
    dest: str | None = None          # a path, "-" (stdout) or None (the store)
    names: tuple = ()                # from ``name=`` (comma-separated inside a quoted field)
    text: str = ""                   # as given, for messages
    push: bool = False               # ``type=registry`` / ``type=image,push=true``: also push every name

    @property
    def stores(self) -> bool:
        """Does this output put the image into the local store (tagged)?"""
        return self.type == "image" or (self.type == "docker" and self.dest is None)

    @property
    def to_stdout(self) -> bool:
        return self.dest == "-"

    @property
    def rootfs(self) -> bool:
        return self.type in ("local", "tar")

    def describe(self) -> str:
        if self.stores:
            return "the image store"
        what = {"docker": "docker image archive", "oci": "OCI image archive", "local": "directory",
                "tar": "rootfs tarball"}[self.type]
        return f"{what} {'on stdout' if self.to_stdout else self.dest}"


def _bool(value: str, key: str, text: str) -> bool:
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise UsageError(f"--output {text}: {key}={value!r} is not a boolean")


def parse_output(text: str) -> Output:
    """One ``--output`` value (buildx's ``ExportEntry.UnmarshalText`` plus our checks)."""
    try:
        fields = next(csv.reader([text], skipinitialspace=False), [])
    except csv.Error as err:
        raise UsageError(f"--output {text}: {err}") from None
    if len(fields) == 1 and fields[0] == text and not text.startswith("type="):
        return Output("tar" if text == "-" else "local", text, text=text)
    kind, dest, attrs = "", None, {}
    for field in fields:
        key, sep, value = field.partition("=")
        if not sep:
            raise UsageError(f"--output {text}: invalid value {field!r} (expected key=value)")
        key = key.strip().lower()
        if key == "type":
            kind = value
        elif key == "dest":
            dest = value
        else:
            attrs[key] = value
    if not kind:
        raise UsageError(f"--output {text}: type is required for output")
    push = False
    if kind == "registry":      # buildx: a shorthand for type=image,push=true
        kind, push = "image", True
        if "push" in attrs and not _bool(attrs.pop("push"), "push", text):
            push = False
    elif kind == "image" and "push" in attrs:
        push = _bool(attrs["push"], "push", text)
    if kind not in TYPES:
        raise UsageError(f"--output {text}: unknown output type {kind!r} (use one of {', '.join(TYPES)})")
    known = _KNOWN[kind]
    for key in [*attrs, *(["dest"] if dest is not None else [])]:
        if key not in known:
            raise UsageError(f"--output {text}: type={kind} has no attribute {key!r} "
                             f"(it takes {', '.join(('type',) + known)})")
    if kind in ("docker", "oci") and "tar" in attrs and not _bool(attrs["tar"], "tar", text):
        raise UsageError(f"--output {text}: tar=false (an OCI layout directory) is not supported yet")
    names = tuple(n.strip() for n in attrs.get("name", "").split(",") if n.strip())
    if kind in ("oci", "tar") and not dest:
        dest = "-"  # buildx: these default to stdout
    if kind == "local" and not dest:
        raise UsageError(f"--output {text}: dest is required for local exporter")
    if kind == "local" and dest == "-":
        raise UsageError(f"--output {text}: dest cannot be stdout for local exporter")
    if kind == "docker" and dest == "":
        dest = None
    return Output(kind, dest, names, text, push)


def parse_outputs(values: Iterable[str], *, stdout_is_tty: bool | None = None) -> tuple[Output, ...]:
    """Every ``--output`` (default: the image store), checked against the destinations as buildx does."""
    outputs = tuple(parse_output(v) for v in values if v != "")
    if not outputs:
        return (Output("image", text="type=image"),)
    if sum(o.to_stdout for o in outputs) > 1:
        raise UsageError("--output: multiple outputs configured to write to stdout")
    for output in outputs:
        if output.to_stdout:
            tty = sys.stdout.isatty() if stdout_is_tty is None else stdout_is_tty
            if tty:
                raise UsageError(f"--output {output.text}: dest file is required for {output.type} exporter. "
                                 "refusing to write to console")
        elif output.type == "local":
            if os.path.exists(output.dest) and not os.path.isdir(output.dest):
                raise UsageError(f"--output {output.text}: destination directory {output.dest} is a file")
        elif output.dest is not None and os.path.isdir(output.dest):
            raise UsageError(f"--output {output.text}: destination file {output.dest} is a directory")
    return outputs


# ----------------------------------------------------------------------------------------------
# delivering


def deliver(store, output: Output, image_id: str, names: tuple) -> None:
    """Write the built image ``image_id`` to ``output`` (not ``stores`` ones: the build tagged those)."""
    try:
        _deliver(store, output, image_id, names)
    except BrokenPipeError:
        _silence_stdout()
        raise OutputError(f"--output {output.text}: the reader of stdout went away before the end") from None
    except OSError as err:
        where = f" {err.filename}" if err.filename else ""
        raise OutputError(f"--output {output.text}: cannot write{where}: {err.strerror or err}") from None


def _silence_stdout() -> None:
    """After EPIPE, point stdout at /dev/null so the interpreter's final flush does not complain."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


def _deliver(store, output: Output, image_id: str, names: tuple) -> None:
    with store.lease("export", [image_id]):
        if output.type in ("docker", "oci"):
            from ..images.archive import DOCKER_ARCHIVE, OCI_ARCHIVE, save_image

            fmt = DOCKER_ARCHIVE if output.type == "docker" else OCI_ARCHIVE
            _write_file(output.dest, lambda out: save_image(store, image_id, names, out, fmt=fmt))
            return
        diff_ids = tuple(store.get_image(image_id).layers)
        if output.type == "local":
            _write_directory(output.dest, lambda root: apply_layers(store, diff_ids, root))
        else:
            _write_file(output.dest, lambda out: write_rootfs_tar(store, diff_ids, out))


def apply_layers(store, diff_ids: Iterable[str], root: str) -> None:
    """Flatten the layers (bottom first) onto ``root``: whiteouts delete, opaque dirs empty."""
    from ..fs.unpack import unpack_layer
    from ..images.layers import open_layer_tar

    for diff_id in diff_ids:
        with open_layer_tar(store, diff_id) as stream:
            unpack_layer(stream, root, mode="apply", compression="none")


def write_rootfs_tar(store, diff_ids: Iterable[str], out: BinaryIO) -> None:
    """The flattened rootfs as one tar (sorted names, no ``./``, dirs with ``/``, like BuildKit's
    ``fsutil.WriteTar``), assembled in a scratch directory of the store."""
    from ..fs.tarwriter import write_tar

    scratch = store.prepare_snapshot()  # an owned temp dir in the store: swept if we die
    try:
        apply_layers(store, diff_ids, str(scratch))
        write_tar(scratch, out)
        out.flush()
    finally:
        store.abort_snapshot(scratch)


def _write_file(dest: str, write) -> None:
    if dest == "-":
        write(sys.stdout.buffer)
        sys.stdout.buffer.flush()
        return
    from ..fs.atomic import write_atomically

    path = os.path.abspath(dest)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    write_atomically(path, write)


def _write_directory(dest: str, fill) -> None:
    path = os.path.abspath(dest)
    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=parent, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o755)
        fill(tmp)
        try:
            os.rename(tmp, path)  # a new (or empty) dest: one rename
        except OSError:
            if not os.path.isdir(path) or os.path.islink(path):
                raise
            _merge(tmp, path)
    finally:
        if os.path.lexists(tmp):
            shutil.rmtree(tmp, ignore_errors=True)


def _merge(src: str, dst: str) -> None:
    """Move ``src``'s entries into the existing directory ``dst``: a directory over a directory merges,
    anything else replaces what is there (never following a symlink found in ``dst``)."""
    with os.scandir(src) as it:
        entries = list(it)
    for entry in entries:
        target = os.path.join(dst, entry.name)
        try:
            existing = os.lstat(target)
        except FileNotFoundError:
            existing = None
        if entry.is_dir(follow_symlinks=False):
            if existing is not None and stat.S_ISDIR(existing.st_mode):
                _merge(entry.path, target)
                _copy_dir_metadata(entry.path, target)
                os.rmdir(entry.path)
                continue
            if existing is not None:
                os.unlink(target)
            os.rename(entry.path, target)
            continue
        if existing is not None and stat.S_ISDIR(existing.st_mode):
            shutil.rmtree(target)
        os.replace(entry.path, target)


def _copy_dir_metadata(src: str, dst: str) -> None:
    st = os.lstat(src)
    os.chown(dst, st.st_uid, st.st_gid, follow_symlinks=False)
    os.chmod(dst, stat.S_IMODE(st.st_mode))
    for name in os.listxattr(src, follow_symlinks=False):
        try:
            os.setxattr(dst, name, os.getxattr(src, name, follow_symlinks=False), follow_symlinks=False)
        except OSError:
            pass
    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
