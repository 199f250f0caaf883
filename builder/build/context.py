"""What a COPY/ADD reads, as one sha256 for its cache key: content and metadata, never mtimes.

The digest covers, for every entry a COPY would copy (wildcards expanded, named symlinks followed
inside the tree, ``--exclude``d paths left out), its path relative to the copied source, type, mode,
size, content sha256, link target, xattrs, and the owner where the tree keeps owners (stages and
images; a build context's owners are reset to 0:0 anyway). Absolute host paths never enter it, so
a context moved to another directory or machine gives the same key.

Content digests come from a ``StatCache``: (host path, size, mtime, inode, ctime) -> sha256, kept
under the state root, loaded once per build, so an unchanged 20,000-file context costs one stat
pass. Layer snapshot files never change, so their digests are cached the same way.

URLs: the ``--checksum`` if given, else the downloaded content's digest (BuildKit downloads again and
compares). Git: the commit the ref resolves to, with the subdir and whether ``.git`` is kept.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import threading
from pathlib import Path

_CACHE_NAME = "stat-cache.json"


class StatCache:
    """(path, size, mtime_ns, inode, ctime) -> content sha256, kept under the state root."""

    def __init__(self, root: Path | None):
        self.path = (Path(root) / "cache" / _CACHE_NAME) if root is not None else None
        self.entries: dict[str, str] = {}
        self.dirty = False
        self._lock = threading.Lock()
        if self.path is not None:
            try:
                self.entries = json.loads(self.path.read_text())
            except (OSError, ValueError):
                self.entries = {}

    def digest(self, path: str, st: os.stat_result) -> str:
        import xxhash

        fingerprint = xxhash.xxh64(f"{path}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ino}\0{st.st_ctime_ns}".encode()).hexdigest()
        found = self.entries.get(fingerprint)
        if found:
            return found
        digest = file_sha256(path)
        with self._lock:
            self.entries[fingerprint] = digest
            self.dirty = True
        return digest

    def save(self) -> None:
        with self._lock:
            if not self.dirty or self.path is None:
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(f".tmp{os.getpid()}.{threading.get_ident()}")
            tmp.write_text(json.dumps(self.entries))
            os.replace(tmp, self.path)
            self.dirty = False


def file_sha256(path: str) -> str:
    hasher = hashlib.sha256()
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        want = 1 << 16                  # small first: most context files fit, and no mmap'd buffer per file
        while chunk := os.read(fd, want):
            hasher.update(chunk)
            if len(chunk) < want:
                break                   # short read of a regular file: the end (saves a read per file)
            want = 1 << 20
    finally:
        os.close(fd)
    return "sha256:" + hasher.hexdigest()


def _stat_record(path: str, st: os.stat_result) -> list:
    return [path, st.st_mode, st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns]


class _Walker:
    def __init__(self, tree, cache: StatCache, reads: list | None, exclude):
        from .sources import DirectoryTree

        self.tree = tree
        self.cache = cache
        self.reads = reads if isinstance(tree, DirectoryTree) else None
        self.exclude = exclude
        self.owners = tree.keeps_owners
        self.out: list = []

    def walk(self, rel: str, name: str, components: str = "") -> None:
        if components and self.exclude is not None and self.exclude.matches(components):
            if not self.exclude.has_exceptions:
                return
            excluded = True
        else:
            excluded = False
        st = self.tree.lstat(rel)
        if self.reads is not None:
            self.reads.append(_stat_record(self.tree.host_path(rel), st))
        mode = st.st_mode
        owner = [st.st_uid, st.st_gid] if self.owners else []
        if stat.S_ISDIR(mode):
            if not excluded:
                self.out.append([name, "dir", stat.S_IMODE(mode), 0, "", "", owner, self._xattrs(rel)])
            for child in self.tree.listdir(rel):
                child_rel = f"{rel}/{child}" if rel else child
                self.walk(child_rel, f"{name}/{child}" if name else child,
                          f"{components}/{child}" if components else child)
            return
        if excluded:
            return
        if stat.S_ISLNK(mode):
            self.out.append([name, "link", 0, 0, "", self.tree.readlink(rel), owner, []])
        elif stat.S_ISREG(mode):
            digest = self.cache.digest(self.tree.host_path(rel), st)
            self.out.append([name, "file", stat.S_IMODE(mode), st.st_size, digest, "", owner, self._xattrs(rel)])
        else:
            self.out.append([name, "special", stat.S_IFMT(mode) | stat.S_IMODE(mode), 0, "", str(st.st_rdev),
                             owner, []])

    def _xattrs(self, rel: str) -> list:
        found = self.tree.xattrs(rel)
        return [[k, hashlib.sha256(v).hexdigest()] for k, v in sorted(found.items())]


def source_digest(instruction, *, tree_for, cache: StatCache, reads: list | None = None,
                  url_digest=None) -> str:
    """sha256 over what a COPY/ADD reads (see the module docstring).

    ``tree_for(name)`` gives the tree of ``--from`` (``""``: the build context). ``reads`` collects
    the ``lstat`` of every context path looked at (the no-op rebuild memo), for a wildcard the
    directory it is matched in too, so a new match is noticed. ``url_digest(url)`` downloads a URL
    and gives its content's digest (default: into a temporary directory).
    """
    from . import addsources, gomatch
    from .copyops import clean_source, expand, follow_source, not_found
    from .copystep import PathPatterns
    from .sources import DirectoryTree, TreeError, resolve

    entries: list = []
    excludes = getattr(instruction, "excludes", ())
    exclude = PathPatterns(excludes) if excludes else None
    checksum = getattr(instruction, "checksum", "") or ""
    tree = None
    for source in instruction.sources:
        git = addsources.parse_git(source)
        if git is not None and type(instruction).__name__ == "AddInstruction":
            if checksum and not git.checksum:
                git = type(git)(git.remote, git.ref, git.subdir, git.keep_git_dir, checksum)
            keep = instruction.keep_git_dir if instruction.keep_git_dir is not None else git.keep_git_dir
            entries.append([source, "git", addsources.resolve_commit(git), git.subdir, bool(keep)])
            if reads is not None:
                reads.append(["<a git source: not memoised>", 0, 0, 0, 0, 0])
            continue
        if source.startswith(("http://", "https://")) and type(instruction).__name__ == "AddInstruction":
            digest = checksum or (url_digest or _download_digest)(source)
            entries.append([source, "url", digest])
            if reads is not None:
                reads.append(["<a URL source: not memoised>", 0, 0, 0, 0, 0])
            continue
        if source.startswith(("http://", "https://")):
            continue        # COPY of a URL: the step itself reports BuildKit's error
        if tree is None:
            tree = tree_for(getattr(instruction, "from_", "") or "")
        clean = clean_source(source)
        if getattr(instruction, "parents", False):
            entries.append(["<parents>", source])
            parent, pivot, _ = source.partition("/./")
            base = clean_source(parent) if pivot else ""
            walker = _Walker(tree, cache, reads, exclude)
            walker.walk(resolve(tree, base) if base else "", "")
            entries.extend(walker.out)
            continue
        if reads is not None and isinstance(tree, DirectoryTree) and gomatch.has_wildcards(clean):
            fixed = []
            for part in clean.split("/"):
                if gomatch.has_wildcards(part):
                    break
                fixed.append(part)
            if len(fixed) < len(clean.split("/")) - 1:
                reads.append(["<a wildcard in a directory name: not memoised>", 0, 0, 0, 0, 0])
            else:
                where = "/".join(fixed)
                try:
                    real = resolve(tree, where)
                    reads.append(_stat_record(tree.host_path(real), tree.lstat(real)))
                except (FileNotFoundError, NotADirectoryError, TreeError):
                    pass
        matches = expand(tree, source)
        if not matches and not gomatch.has_wildcards(clean):
            raise not_found(clean)
        for match in matches:
            real, _ = follow_source(tree, match)
            if reads is not None and isinstance(tree, DirectoryTree) and real != match:
                try:
                    reads.append(_stat_record(tree.host_path(match), tree.lstat(match)))
                except (FileNotFoundError, NotADirectoryError):
                    pass
            walker = _Walker(tree, cache, reads, exclude)
            walker.walk(real, match.rpartition("/")[2] if match else "")
            entries.append(["<source>", match])
            entries.extend(walker.out)
    for content in getattr(instruction, "contents", ()):
        entries.append([f"<<{content.path}", "heredoc", 0o644, len(content.data),
                        "sha256:" + hashlib.sha256(content.data.encode("utf-8", "surrogateescape")).hexdigest(), ""])
    cache.save()
    data = json.dumps(entries, separators=(",", ":"), ensure_ascii=True).encode()
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _download_digest(url: str) -> str:
    import shutil
    import tempfile

    from .addsources import download

    work = tempfile.mkdtemp(prefix="pybuild-add-")
    try:
        _, digest = download(url, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return digest
