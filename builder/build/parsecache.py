"""Parsed Dockerfiles cached under the state root, so a rebuild skips Lark entirely.

``parse_cached(data, root=...)`` returns the typed ``Dockerfile`` for the bytes ``data``: from
``<root>/cache/parse/<key>.pickle`` when it is there, else by parsing (and then storing it). The key
is the sha256 of

* the Dockerfile's bytes,
* the ``BUILDKIT_SYNTAX`` build arg (it overrides the ``# syntax=`` directive, so it changes the
  parse result), and
* a fingerprint of the code that makes the result: pybuild's version, the Python version, the
  grammar file and the sources of ``builder/dockerfile`` (a pickle of classes whose fields changed
  must never load; during development the version alone does not change).

Loading a cached parse imports only the modules of the pickled classes -- not ``lark`` (a test
checks ``sys.modules`` in a fresh interpreter). Files are written to a temporary name in the same
directory, fsynced and renamed, so a reader sees a whole pickle or none. An entry that cannot be
read (truncated, written by another Python) counts as a miss and is replaced.

The cache trusts its directory: it lives under the state root, which only its owner may write.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import sys

__all__ = ["CACHE_FORMAT", "cache_dir", "cache_key", "code_fingerprint", "load", "store", "parse_cached"]

CACHE_FORMAT = 1
# (os.path rather than pathlib, and tempfile imported only to write: a cache hit stays cheap to load)
_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))     # builder/
_TOP = os.path.dirname(_PACKAGE)
_GRAMMAR = os.path.join(_TOP, "grammar", "dockerfile.lark")
_fingerprint: str | None = None


def code_fingerprint() -> str:
    """sha256 of what decides a parse result besides the bytes: versions, grammar, parser sources."""
    global _fingerprint
    if _fingerprint is not None:
        return _fingerprint
    from .. import __version__

    h = hashlib.sha256()
    h.update(f"pybuild-parse-cache {CACHE_FORMAT} {__version__} {sys.version_info[0]}.{sys.version_info[1]}\n"
             .encode())
    parser_dir = os.path.join(_PACKAGE, "dockerfile")
    sources = [_GRAMMAR, os.path.join(_PACKAGE, "errors.py"), os.path.join(_PACKAGE, "gotext.py")]
    sources += sorted(os.path.join(parser_dir, n) for n in os.listdir(parser_dir) if n.endswith(".py"))
    for path in sources:
        try:
            with open(path, "rb") as fh:
                data = fh.read()
        except OSError:
            data = b"<missing>"
        h.update(f"{os.path.relpath(path, _TOP)} {len(data)}\n".encode())
        h.update(data)
    _fingerprint = h.hexdigest()
    return _fingerprint


def cache_key(data: bytes, build_args: dict | None = None) -> str:
    """The cache key (hex) of a Dockerfile's bytes."""
    syntax = (build_args or {}).get("BUILDKIT_SYNTAX")
    h = hashlib.sha256()
    h.update(code_fingerprint().encode())
    h.update(b"\0" + hashlib.sha256(data).digest())
    h.update(b"\0" + (b"-" if syntax is None else b"=" + syntax.encode("utf-8", "surrogateescape")))
    return h.hexdigest()


def cache_dir(root: str | os.PathLike) -> str:
    return os.path.join(os.fspath(root), "cache", "parse")


def _path(root, key: str) -> str:
    return os.path.join(cache_dir(root), f"{key}.pickle")


def load(root: str | os.PathLike, key: str):
    """The cached ``Dockerfile`` for ``key``, or None (absent or unreadable)."""
    from ..perf import gc_paused

    try:
        with open(_path(root, key), "rb") as fh:
            with gc_paused():
                value = pickle.load(fh)
    except FileNotFoundError:
        return None
    except Exception:  # truncated, from another Python, classes gone: a miss
        return None
    return value if type(value).__name__ == "Dockerfile" else None


def store(root: str | os.PathLike, key: str, dockerfile) -> str:
    """Write ``dockerfile`` for ``key`` atomically (temp file, fsync, rename); returns its path."""
    import tempfile

    directory = cache_dir(root)
    os.makedirs(directory, exist_ok=True)
    final = _path(root, key)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".pickle")
    try:
        with os.fdopen(fd, "wb") as fh:
            pickle.dump(dockerfile, fh, protocol=pickle.HIGHEST_PROTOCOL)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, final)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return final


def parse_cached(data: bytes, *, root: str | os.PathLike, filename: str = "Dockerfile",
                 build_args: dict | None = None):
    """``parse_dockerfile(data, filename, build_args)``, cached by content under ``root``.

    A Dockerfile that does not parse raises as ``parse_dockerfile`` does and is not cached. A cache
    directory that cannot be written only costs the next run a parse.
    """
    key = cache_key(data, build_args)
    found = load(root, key)
    if found is not None:
        if found.filename != filename:
            from dataclasses import replace

            found = replace(found, filename=filename, tree=found.tree._replace(filename=filename))
        return found
    from ..dockerfile.instructions import parse_dockerfile

    dockerfile = parse_dockerfile(data, filename, build_args)
    try:
        store(root, key, dockerfile)
    except OSError:
        pass
    return dockerfile
