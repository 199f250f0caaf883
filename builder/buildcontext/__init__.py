"""The build context: where a build's files come from, and which of them it may see.

* ``ignore``: ``.dockerignore`` rules (``IgnoreRules``), Docker's semantics;
* ``opener``: ``open_build_context`` — a directory, ``-`` (a tar or a Dockerfile on stdin), a git URL
  or an http(s) URL, with ``-f`` read as docker reads it; temp dirs removed on exit;
* ``named``: ``--build-context name=VALUE`` (``NamedContext``) and ``open_named_contexts``;
* ``location`` (what a location names), ``remote`` (git and http fetches), ``archive`` (tars).

Names are loaded lazily: the no-op rebuild memo imports ``ignore`` before anything heavy.
"""

from __future__ import annotations

_EXPORTS = {
    "IgnoreRules": "ignore", "IgnoreFileError": "ignore",
    "BuildContext": "opener", "open_build_context": "opener", "read_ignore_rules": "opener",
    "NamedContext": "named", "parse_named_context": "named", "open_named_contexts": "named",
    "context_key": "named",
    "ContextError": "errors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
