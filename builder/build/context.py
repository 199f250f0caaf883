"""The build context's part in cache keys: content digests of what a COPY reads.

A COPY step's key includes one sha256 over the sorted (path, type, mode, size, content digest, link
target) of every file it copies — never mtimes, never absolute paths — so a context copied to
another directory or another machine gives the same key. Content digests are sha256; a local stat
cache (path, size, mtime, inode -> digest, fingerprinted with xxhash) means an unchanged file is not
read again.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path


_CACHE_NAME = "stat-cache.json"


class StatCache:
    """(path, size, mtime_ns, inode) -> content sha256, kept under the state root."""

    def __init__(self, root: Path | None):
        self.path = (root / "cache" / _CACHE_NAME) if root is not None else None
        self.entries: dict[str, list] = {}
        self.dirty = False
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
        hasher = hashlib.sha256()
        with open(path, "rb") as fh:
            while chunk := fh.read(1 << 20):
                hasher.update(chunk)
        digest = "sha256:" + hasher.hexdigest()
        self.entries[fingerprint] = digest
        self.dirty = True
        return digest

    def save(self) -> None:
        if not self.dirty or self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(self.entries))
        os.replace(tmp, self.path)
        self.dirty = False


def _walk(path: str, rel: str, cache: StatCache, out: list, reads: list | None) -> None:
    st = os.lstat(path)
    if reads is not None:
        reads.append([path, st.st_mode, st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns])
    mode = st.st_mode
    if stat.S_ISLNK(mode):
        out.append([rel, "link", stat.S_IMODE(mode), 0, "", os.readlink(path)])
    elif stat.S_ISDIR(mode):
        out.append([rel, "dir", stat.S_IMODE(mode), 0, "", ""])
        for name in sorted(os.listdir(path)):
            _walk(os.path.join(path, name), f"{rel}/{name}" if rel else name, cache, out, reads)
    elif stat.S_ISREG(mode):
        out.append([rel, "file", stat.S_IMODE(mode), st.st_size, cache.digest(path, st), ""])


def source_digest(context: str | None, instruction, state_root: Path | None = None, reads: list | None = None) -> str:
    """sha256 over what a COPY/ADD reads from the context (paths relative to the context).

    ``reads`` collects the ``lstat`` of every path looked at (for the no-op rebuild memo): for a
    wildcard, the directory it is matched in too, so a new match is noticed.
    """
    import glob as _glob

    from .fileops import _context_path, expand_sources

    entries: list = []
    if instruction.sources:
        if context is None:
            from .fileops import CopyError

            raise CopyError(f"{instruction.keyword} needs a build context")
        cache = StatCache(state_root)
        base = os.path.realpath(context)
        if reads is not None:
            for source in instruction.sources:
                if _glob.has_magic(source):
                    where = os.path.dirname(_context_path(context, source))
                    if _glob.has_magic(where):
                        reads.append(["<a wildcard in a directory name: not memoised>", 0, 0, 0, 0, 0])
                    else:
                        st = os.lstat(where)
                        reads.append([where, st.st_mode, st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns])
        for path in expand_sources(context, instruction.sources):
            rel = os.path.relpath(os.path.realpath(path) if os.path.isdir(path) else path, base)
            _walk(path, "" if rel == "." else rel, cache, entries, reads)
        cache.save()
    for content in getattr(instruction, "contents", ()):
        entries.append([f"<<{content.path}", "heredoc", 0o644, len(content.data),
                        "sha256:" + hashlib.sha256(content.data.encode("utf-8", "surrogateescape")).hexdigest(), ""])
    data = json.dumps(entries, separators=(",", ":"), ensure_ascii=True).encode()
    return "sha256:" + hashlib.sha256(data).hexdigest()
