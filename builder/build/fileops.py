"""Filesystem steps done without a sandbox: WORKDIR's mkdir and COPY from the build context.

Both write into an overlay upper directory over the step's lower layers. A directory that exists
below and must hold something new is first "copied up" (created in the upper directory with the
lower one's mode, owner, times and xattrs), exactly as overlayfs itself would, so the merged view
keeps its attributes.
"""

from __future__ import annotations

import glob
import os
import posixpath
import shutil
import stat
from contextvars import ContextVar

from ..errors import PybuildError


# Who wants to hear about bytes copied (the progress UI's bars for long transfers); None: nobody.
TRANSFER: ContextVar = ContextVar("pybuild_copy_transfer", default=None)
_BIG = 1 << 20


def _copy_file(src: str, dst: str, size: int) -> None:
    report = TRANSFER.get()
    if report is None or size < _BIG:
        shutil.copyfile(src, dst, follow_symlinks=False)
        return
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        while chunk := fin.read(_BIG):
            fout.write(chunk)
            report(len(chunk))


class CopyError(PybuildError):
    """A COPY/ADD source that cannot be used (outside the context, missing, unreadable)."""


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


# ----------------------------------------------------------------------------------------------
# COPY


def _context_path(context: str, source: str) -> str:
    """A source path inside the context (``..`` and leading ``/`` cleaned, as BuildKit does)."""
    clean = posixpath.normpath("/" + source).lstrip("/")
    return os.path.join(context, clean) if clean else context


def expand_sources(context: str, sources) -> list[str]:
    """Host paths of the sources; wildcards may match nothing (not an error, as in BuildKit)."""
    out: list[str] = []
    for source in sources:
        path = _context_path(context, source)
        if glob.has_magic(source):
            # Go's filepath.Match: "*" matches dotfiles too; the context's own path is no pattern
            pattern = posixpath.normpath("/" + source).lstrip("/")
            matches = glob.glob(pattern, root_dir=context, include_hidden=True)
            out.extend(os.path.join(context, m) for m in sorted(matches))
            continue
        if not os.path.lexists(path):
            raise CopyError(f'failed to compute cache key: "/{posixpath.normpath("/" + source).lstrip("/")}": not found')
        out.append(path)
    real_context = os.path.realpath(context)
    for path in out:
        if not os.path.realpath(path).startswith(real_context.rstrip("/") + "/") and \
                os.path.realpath(path) != real_context:
            raise CopyError(f"{path}: a COPY source may not point outside the build context")
    return out


def _chmod(value: str) -> int | None:
    if not value:
        return None
    try:
        mode = int(value, 8)
    except ValueError:
        raise CopyError(f"invalid chmod value {value!r} (symbolic modes come with the full COPY)") from None
    if mode > 0o7777:
        raise CopyError(f"invalid chmod value {value!r}")
    return mode


def _copy_entry(src: str, dst: str, uid: int, gid: int, mode: int | None) -> None:
    st = os.lstat(src)
    if os.path.lexists(dst) and not (stat.S_ISDIR(st.st_mode) and os.path.isdir(dst)):
        if os.path.isdir(dst) and not os.path.islink(dst):
            shutil.rmtree(dst)
        else:
            os.unlink(dst)
    if stat.S_ISLNK(st.st_mode):
        os.symlink(os.readlink(src), dst)
        os.lchown(dst, uid, gid)
        os.utime(dst, ns=(st.st_mtime_ns, st.st_mtime_ns), follow_symlinks=False)
        return
    if stat.S_ISDIR(st.st_mode):
        if not os.path.isdir(dst):
            os.mkdir(dst)
        for name in sorted(os.listdir(src)):
            _copy_entry(os.path.join(src, name), os.path.join(dst, name), uid, gid, mode)
        os.chown(dst, uid, gid)
        os.chmod(dst, mode if mode is not None else stat.S_IMODE(st.st_mode))
        os.utime(dst, ns=(st.st_mtime_ns, st.st_mtime_ns))
        return
    if not stat.S_ISREG(st.st_mode):
        return  # sockets, devices, fifos are not copied from a context
    _copy_file(src, dst, st.st_size)
    os.chown(dst, uid, gid)
    os.chmod(dst, mode if mode is not None else stat.S_IMODE(st.st_mode))
    os.utime(dst, ns=(st.st_mtime_ns, st.st_mtime_ns))


def copy_into(context: str | None, lowers, upper: str, instruction, workdir: str, *,
              source_date_epoch: int | None = None) -> None:
    """COPY/ADD from the build context (local files; the full COPY/ADD comes with the next issue)."""
    if getattr(instruction, "from_", ""):
        raise CopyError("COPY --from comes with multi-stage builds (not supported yet)")
    dest = instruction.dest
    if not dest.startswith("/"):
        dest = posixpath.join(workdir or "/", dest)
    uid, gid = resolve_chown(lowers, upper, instruction.chown) if instruction.chown else (0, 0)
    mode = _chmod(instruction.chmod)
    sources = expand_sources(context, instruction.sources) if instruction.sources else []
    if not sources and not instruction.contents:
        return  # only wildcards, matching nothing: BuildKit creates nothing, not even the destination
    many = len(sources) + len(instruction.contents) > 1  # a wildcard matching one file copies it to dest itself
    to_dir = dest.endswith("/") or many
    if to_dir or any(os.path.isdir(s) and not os.path.islink(s) for s in sources):
        dest_dir = ensure_dir(lowers, upper, dest, uid, gid)  # directories COPY creates get the --chown owner
    else:
        dest_dir = None
        ensure_dir(lowers, upper, posixpath.dirname(dest), uid, gid)
    for src in sources:
        if os.path.isdir(src) and not os.path.islink(src):
            target_dir = dest_dir
            for name in sorted(os.listdir(src)):
                _copy_entry(os.path.join(src, name), os.path.join(target_dir, name), uid, gid, mode)
        else:
            target = os.path.join(dest_dir, os.path.basename(src)) if dest_dir else \
                os.path.join(upper, posixpath.normpath(dest).lstrip("/"))
            _copy_entry(src, target, uid, gid, mode)
    for content in instruction.contents:
        target = os.path.join(dest_dir, content.path) if dest_dir else os.path.join(upper, dest.lstrip("/"))
        data = content.data
        with open(target, "w", encoding="utf-8", errors="surrogateescape") as fh:
            fh.write(data)
        os.chown(target, uid, gid)
        os.chmod(target, mode if mode is not None else 0o644)
