"""COPY and ADD of local sources with BuildKit's semantics (its file op over fsutil's copier).

For each source of the instruction, in order, on the result of the previous one:

* the source path is cleaned inside the tree (``..`` and a leading ``/`` cannot leave it) and its
  wildcards are resolved with Go's ``filepath.Match`` one directory level per pattern component; a
  wildcard that matches nothing is no error; every match (and a plain source) is followed if it is
  a symlink, inside the tree;
* the destination is taken relative to WORKDIR; a trailing ``/`` makes it a directory; the
  directories on the way are created 0755 (or the octal ``--chmod``) owned by the ``--chown`` user,
  and symlinks in it are resolved inside the image;
* a directory source copies its contents; a file lands on the destination itself, or inside it if
  the destination is (or ends up being) a directory;
* entries keep type, mode, mtime and xattrs; symlinks are copied as links; hardlinks found twice in
  one source stay hardlinks; owners come from the tree (a build context's are 0:0) unless
  ``--chown``; ``--chmod`` sets (octal) or edits (symbolic) every entry's mode;
* a file cannot replace a directory (``cannot replace to directory``), a directory cannot go where
  a non-directory is (``cannot copy to non-directory``);
* ``--exclude`` patterns leave paths out, ``--parents`` keeps each source's path (from the tree's
  root, or from a ``/./`` pivot) below the destination.
"""

from __future__ import annotations

import os
import posixpath
import stat
import threading
from contextvars import ContextVar
from dataclasses import dataclass

from . import gomatch
from .copyerror import CopyError
from .sources import TreeError, join, resolve

# Who wants to hear about bytes copied (the progress UI's bars for long transfers); None: nobody.
TRANSFER: ContextVar = ContextVar("pybuild_copy_transfer", default=None)
_BIG = 1 << 20
_REPORT_EVERY = 32 << 20


@dataclass
class CopyOptions:
    chown: tuple[int, int] | None = None       # --chown, resolved
    chmod: object = None                       # ChmodSpec or None
    dir_contents: bool = True                  # a directory source copies its contents
    follow: bool = True                        # a symlink named as the source is followed
    include: object = None                     # --parents: the pattern matcher of what to keep
    exclude: object = None                     # --exclude matcher
    utime_ns: int | None = None                # a fixed time for everything written (none: the source's)


# ----------------------------------------------------------------------------------------------
# sources


def clean_source(source: str) -> str:
    """A source path relative to the tree root (BuildKit's ``cleanPath`` without the slash)."""
    return posixpath.normpath("/" + source).lstrip("/")


def expand(tree, source: str, *, follow: bool = True) -> list[str]:
    """The tree paths a source names: itself, or the matches of its wildcards (maybe none)."""
    clean = clean_source(source)
    if not gomatch.has_wildcards(clean):
        return [clean]
    parts = clean.split("/")
    fixed: list[str] = []
    for part in parts:
        if gomatch.has_wildcards(part):
            break
        fixed.append(part)
    rest = parts[len(fixed):]
    base = "/".join(fixed)
    try:
        base = resolve(tree, base, follow_final=follow)
        st = tree.lstat(base)
    except (FileNotFoundError, NotADirectoryError):
        return []
    except TreeError as err:
        raise CopyError(err.message) from None
    if not stat.S_ISDIR(st.st_mode):
        return []
    pattern = "/".join(rest)
    out: list[str] = []
    depth = len(rest)

    def walk(directory: str, rel: str, level: int) -> None:
        try:
            names = tree.listdir(directory)
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            return
        for name in sorted(names):
            child_rel = join(rel, name)
            child = join(directory, name)
            try:
                matched = gomatch.match(pattern, child_rel)
            except gomatch.BadPattern:
                raise CopyError(f"syntax error in pattern: {source!r}") from None
            if matched:
                out.append(child)
                continue             # a matching directory is taken whole (SkipDir)
            if level + 1 < depth:
                try:
                    child_st = tree.lstat(child)
                except FileNotFoundError:
                    continue
                if stat.S_ISDIR(child_st.st_mode):
                    walk(child, child_rel, level + 1)

    walk(base, "", 0)
    return out


def not_found(path: str) -> CopyError:
    return CopyError(f'failed to compute cache key: "/{path}": not found')


def follow_source(tree, path: str) -> tuple[str, os.stat_result]:
    """(resolved path, lstat) of a source, symlinks followed inside the tree; BuildKit's "not found"."""
    try:
        real = resolve(tree, path)
    except TreeError as err:
        raise CopyError(f"failed to compute cache key: {err.message}") from None
    try:
        return real, tree.lstat(real)
    except (FileNotFoundError, NotADirectoryError):
        raise not_found(real) from None     # BuildKit names the link's target


# ----------------------------------------------------------------------------------------------
# the copier


class Copier:
    """One source's copy (fsutil's copier): keeps the hardlink map of that source."""

    def __init__(self, tree, dest, options: CopyOptions, *, workers: int | None = None, inodes=None,
                 inodes_lock=None):
        self.tree = tree
        self.dest = dest
        self.options = options
        self.workers = workers          # threads for the top directory's subdirectories (None: this thread)
        self.inodes: dict[tuple[int, int], str] = {} if inodes is None else inodes
        self.inodes_lock = inodes_lock or threading.Lock()
        self.pending_parents: list[list] = []      # [src, dst, copied] of dirs created only when needed
        self.report = TRANSFER.get()

    def owner(self, st: os.stat_result) -> tuple[int, int]:
        if self.options.chown is not None:
            return self.options.chown
        return self.tree.owner(st)

    def mode_of(self, st: os.stat_result) -> int:
        spec = self.options.chmod
        if spec is None:
            return stat.S_IMODE(st.st_mode)
        return spec.apply(st.st_mode, stat.S_ISDIR(st.st_mode))

    def copy(self, src: str, components: str, target: str, overwrite: bool) -> None:
        include, excluded = True, False
        if components:
            if self.options.include is not None:
                include = self.options.include.matches(components)
            if self.options.exclude is not None and self.options.exclude.matches(components):
                include, excluded = False, True
        st = self.tree.lstat(src)
        is_dir = stat.S_ISDIR(st.st_mode)
        if not include and not is_dir:
            return
        target_st = self.dest.lstat(target)
        if include:
            self._create_parents()
        if not is_dir and target_st is not None and stat.S_ISDIR(target_st.st_mode):
            raise CopyError(f"cannot replace to directory /{target} with file")
        copy_info, restore_time = include, False
        if is_dir:
            created = self._directory(src, components, target, st, target_st, overwrite, include, excluded)
            if not overwrite:
                copy_info, restore_time = created, not created
        else:
            path = self.dest.prepare(target, absent=target_st is None)
            if stat.S_ISREG(st.st_mode):
                self._file(src, path, st)
            elif stat.S_ISLNK(st.st_mode):
                os.symlink(self.tree.readlink(src), path)
            else:
                os.mknod(path, stat.S_IFMT(st.st_mode) | 0o600, st.st_rdev)
        if copy_info:
            self._file_info(src, st, target)
        elif restore_time and target_st is not None:
            self._times(st, self.dest.upper_path(target) if is_dir else target)

    def _directory(self, src, components, target, st, target_st, overwrite, include, excluded) -> bool:
        created = False
        entry = [src, target, False]
        if include:
            created = self._directory_only(target, st, target_st, overwrite)
            entry[2] = True
        self.pending_parents.append(entry)
        try:
            if excluded and not getattr(self.options.exclude, "has_exceptions", True):
                return False
            names = self.tree.listdir(src)
            if self.workers is not None and self.options.include is None and self.options.exclude is None:
                self._subdirectories_in_parallel(src, components, target, names)
            else:
                for name in names:
                    self.copy(join(src, name), join(components, name), join(target, name), True)
        finally:
            self.pending_parents.pop()
        return created

    def _subdirectories_in_parallel(self, src, components, target, names) -> None:
        """The entries of the top directory: files here, each subdirectory's tree in a worker thread.

        Creating many files is kernel work (inode allocation, directory updates) that overlaps across
        CPUs when the files go to different directories (in one directory they contend for its lock),
        and the threads release the GIL in every syscall. Only for plain copies (no --parents or
        --exclude patterns, whose bookkeeping follows the walk); hardlinks share one locked map.
        """
        subdirs = []
        for name in names:
            child = join(src, name)
            if stat.S_ISDIR(self.tree.lstat(child).st_mode):
                subdirs.append(name)
            else:
                self.copy(child, join(components, name), join(target, name), True)
        if len(subdirs) < 2:
            for name in subdirs:
                self.copy(join(src, name), join(components, name), join(target, name), True)
            return
        from concurrent.futures import ThreadPoolExecutor

        def one(name: str) -> None:
            worker = Copier(self.tree, self.dest, self.options, inodes=self.inodes, inodes_lock=self.inodes_lock)
            worker.pending_parents = list(self.pending_parents)
            worker.report = self.report          # a context variable: not inherited by the thread
            worker.copy(join(src, name), join(components, name), join(target, name), True)

        with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="copy") as pool:
            jobs = [pool.submit(one, name) for name in subdirs]
            errors = [job.exception() for job in jobs]
        first = next((e for e in errors if e is not None), None)
        if first is not None:
            raise first

    def _directory_only(self, target: str, st, target_st, overwrite: bool) -> bool:
        if target_st is None:
            self.dest.mkdir(target, stat.S_IMODE(st.st_mode))
            return True
        if not stat.S_ISDIR(target_st.st_mode):
            raise CopyError(f"cannot copy to non-directory: /{target}")
        if overwrite:
            os.chmod(self.dest.writable_dir(target), stat.S_IMODE(st.st_mode))
        else:
            self.dest.writable_dir(target)
        return False

    def _create_parents(self) -> None:
        for entry in self.pending_parents:
            if entry[2]:
                continue
            src, target = entry[0], entry[1]
            st = self.tree.lstat(src)
            target_st = self.dest.lstat(target)
            if self._directory_only(target, st, target_st, True) or target_st is None:
                self._file_info(src, st, target)
            entry[2] = True

    def _file(self, src: str, path: str, st: os.stat_result) -> None:
        if st.st_nlink > 1:
            key = (st.st_dev, st.st_ino)
            with self.inodes_lock:     # the first copy of an inode is written before its links are made
                first = self.inodes.get(key)
                if first is not None:
                    os.link(first, path)
                    return
                self.inodes[key] = path
                copy_file(self.tree.host_path(src), path, st.st_size, self.report, st.st_blocks)
            return
        copy_file(self.tree.host_path(src), path, st.st_size, self.report, st.st_blocks)

    def _file_info(self, src: str, st: os.stat_result, target: str) -> None:
        path = self.dest.upper_path(target)
        uid, gid = self.owner(st)
        os.lchown(path, uid, gid)
        if not stat.S_ISLNK(st.st_mode):
            os.chmod(path, self.mode_of(st))
        self._times(st, path)
        for name, value in self.tree.xattrs(src).items():
            try:
                os.setxattr(path, name, value, follow_symlinks=False)
            except OSError:
                pass            # BuildKit logs and goes on

    def _times(self, st: os.stat_result, path: str) -> None:
        if self.options.utime_ns is not None:
            times = (self.options.utime_ns, self.options.utime_ns)
        else:
            times = (st.st_atime_ns, st.st_mtime_ns)
        os.utime(path, ns=times, follow_symlinks=False)


def copy_file(src: str, dst: str, size: int, report=None, blocks: int | None = None) -> None:
    """File content by copy_file_range (sendfile, then read/write, where the kernel refuses).

    A sparse source keeps its holes (only the data ranges are copied): the bytes are the same as
    BuildKit's dense copy, and a 2 GiB file of zeros costs no disk.
    """
    fin = os.open(src, os.O_RDONLY | os.O_CLOEXEC)
    try:
        fout = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            if blocks is None:
                blocks = os.fstat(fin).st_blocks
            if size and blocks * 512 < size:
                if _copy_sparse(fin, fout, size, report):
                    return
                os.lseek(fin, 0, os.SEEK_SET)
                os.lseek(fout, 0, os.SEEK_SET)
                os.ftruncate(fout, 0)
            _copy_range(fin, fout, size, report)
        finally:
            os.close(fout)
    finally:
        os.close(fin)


def _copy_sparse(fin: int, fout: int, size: int, report) -> bool:
    """Copy the data ranges of a sparse file; False when the filesystem cannot tell holes."""
    offset = 0
    while offset < size:
        try:
            start = os.lseek(fin, offset, os.SEEK_DATA)
        except OSError as err:
            if err.errno == 6:          # ENXIO: only a hole is left
                break
            return False
        end = os.lseek(fin, start, os.SEEK_HOLE)
        os.lseek(fin, start, os.SEEK_SET)
        os.lseek(fout, start, os.SEEK_SET)
        _copy_range(fin, fout, end - start, None)
        offset = end
    os.ftruncate(fout, size)
    if report is not None and size >= _BIG:
        report(size)
    return True


def _copy_range(fin: int, fout: int, size: int, report) -> None:
    """``size`` bytes (or up to EOF) from fin's offset to fout's offset, in the kernel where it can."""
    done = pending = 0
    method = "range"
    while done < size:
        want = min(1 << 30, size - done)
        if method == "range":
            try:
                n = os.copy_file_range(fin, fout, want)
            except OSError:
                if done:
                    raise
                method = "sendfile"
                continue
        elif method == "sendfile":
            try:
                n = os.sendfile(fout, fin, None, want)
            except OSError:
                if done:
                    raise
                method = "plain"
                continue
        else:
            chunk = os.read(fin, min(1 << 20, want))
            n = len(chunk)
            view = memoryview(chunk)
            while view:
                view = view[os.write(fout, view):]
        if n == 0:
            break
        done += n
        pending += n
        if report is not None and pending >= _REPORT_EVERY:
            report(pending)
            pending = 0
    if report is not None and pending and (size >= _BIG or done >= _BIG):
        report(pending)


# ----------------------------------------------------------------------------------------------
# one source of an instruction


def copy_source(tree, source_path: str, dest, dest_path: str, options: CopyOptions) -> None:
    """BuildKit's ``Copy(srcRoot, src, dstRoot, dst)`` for one (matched) source.

    ``source_path`` is a tree path (cleaned); ``dest_path`` is absolute in the image and keeps a
    trailing ``/`` if written with one.
    """
    octal = options.chmod.octal if options.chmod is not None else None
    dir_mode = octal if octal is not None else 0o755
    ensure = dest_path if dest_path.endswith("/") else posixpath.dirname(dest_path)
    try:
        if ensure not in ("", "/"):
            dest.mkdir_all(dest.resolve(ensure), dir_mode, options.chown, options.utime_ns)
        target = dest.resolve(posixpath.normpath(dest_path))
    except NotADirectoryError as err:
        raise CopyError(f"mkdir {err.filename}: not a directory") from None
    except TreeError as err:
        raise CopyError(err.message) from None
    if options.follow:
        real, st = follow_source(tree, source_path)
    else:
        real = source_path
        try:
            st = tree.lstat(real)
        except (FileNotFoundError, NotADirectoryError):
            raise not_found(source_path) from None
    src_is_dir = stat.S_ISDIR(st.st_mode)
    dest_st = dest.lstat(target)
    dest_is_dir = dest_st is not None and stat.S_ISDIR(dest_st.st_mode)
    if (not options.dir_contents and src_is_dir and dest_st is not None) or (not src_is_dir and dest_is_dir):
        name = posixpath.basename(source_path.rstrip("/")) or posixpath.basename(real)
        target = join(target, name) if target else name
    parent = posixpath.dirname(target)
    if options.dir_contents and src_is_dir and dest_st is None:
        parent = target
    try:
        if parent:
            dest.mkdir_all(parent, dir_mode, options.chown, options.utime_ns)
    except NotADirectoryError as err:
        raise CopyError(f"mkdir {err.filename}: not a directory") from None
    workers = min(4, os.cpu_count() or 1)
    Copier(tree, dest, options, workers=workers if workers > 1 else None).copy(real, "", target, False)
