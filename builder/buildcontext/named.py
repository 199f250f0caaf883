"""Named build contexts: ``--build-context name=VALUE`` (buildx's flag, BuildKit's ``context:name``).

VALUE is a local directory, ``docker-image://REF`` (an image; ``docker-image://scratch`` is the
empty one), a git URL, or an http(s) URL. Names are normalized as BuildKit normalizes them
(``docker.io/library/alpine:latest`` and ``alpine`` are the same context), so a named context
overrides the stage or image of the same name in ``FROM`` and ``COPY --from``.

What each becomes for the build (``open_named_contexts``): a directory is used in place with its own
``.dockerignore``; a git URL is checked out (no ignore rules, as BuildKit's git source); an http(s)
URL is downloaded *as a file named* ``context`` in an otherwise empty directory (BuildKit's
``llb.HTTP(..., Filename("context"))``, never unpacked); an image stays a reference for the engine
to resolve.
"""

from __future__ import annotations

import os
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

from .errors import ContextError

KINDS = ("dir", "image", "git", "url")


@dataclass(frozen=True)
class NamedContext:
    name: str      # normalized (see ``context_key``)
    kind: str      # one of KINDS
    value: str     # an absolute directory, an image reference, a git URL or an http(s) URL


def context_key(name: str) -> str:
    """BuildKit's key for a context name: the familiar reference without ``:latest``, lowercase."""
    from ..errors import InvalidReference
    from ..image.reference import parse_normalized_named

    try:
        ref = parse_normalized_named(name)
    except InvalidReference:
        raise ContextError(f"invalid context name {name!r}") from None
    familiar = ref.familiar
    if familiar.endswith(":latest"):
        familiar = familiar[: -len(":latest")]
    return familiar.lower()


def parse_named_context(text: str) -> NamedContext:
    """One ``--build-context`` value, ``name=VALUE``."""
    from .location import is_http_url, parse_git_ref

    name, eq, value = text.partition("=")
    if not eq or not name or not value:
        raise ContextError(f"invalid context value: {text}, expected key=value")
    key = context_key(name)
    if value.startswith("docker-image://"):
        ref = value[len("docker-image://"):]
        if not ref:
            raise ContextError(f"invalid context value: {text}: no image reference after docker-image://")
        return NamedContext(key, "image", ref)
    if value.startswith(("oci-layout://", "target:", "input:", "local:")):
        raise ContextError(f"build context {name}: {value.split(':', 1)[0]} contexts are not supported")
    if parse_git_ref(value) is not None and not os.path.isdir(value):
        return NamedContext(key, "git", value)
    if is_http_url(value):
        return NamedContext(key, "url", value)
    try:
        st = os.stat(value)
    except OSError as err:
        raise ContextError(f"failed to get build context {name}: stat {value}: {err.strerror.lower()}") from None
    import stat

    if not stat.S_ISDIR(st.st_mode):
        raise ContextError(f"failed to get build context path {value}: not a directory")
    return NamedContext(key, "dir", os.path.abspath(value))


def parse_named_contexts(values) -> dict[str, NamedContext]:
    """Every ``--build-context`` of a command line (the last one of a name wins, as with buildx)."""
    out: dict[str, NamedContext] = {}
    for text in values:
        named = parse_named_context(text)
        out[named.name] = named
    return out


@contextmanager
def open_named_contexts(named: dict, tmp_dir: str | None = None):
    """name -> ``("dir", root, ignore)`` or ``("image", ref)`` for every named context, remote ones
    fetched into temp dirs that are removed on exit."""
    from .location import parse_git_ref
    from .opener import read_ignore_rules
    from .remote import download, git_context, temp_dir

    with ExitStack() as stack:
        out: dict[str, tuple] = {}
        for name, context in named.items():
            if context.kind == "image":
                out[name] = ("image", context.value)
            elif context.kind == "dir":
                out[name] = ("dir", context.value, read_ignore_rules(context.value)[0])
            elif context.kind == "git":
                work = stack.enter_context(temp_dir(tmp_dir, "context-"))
                out[name] = ("dir", git_context(parse_git_ref(context.value), work), None)
            elif context.kind == "url":
                work = stack.enter_context(temp_dir(tmp_dir, "context-"))
                download(context.value, os.path.join(work, "context"))
                out[name] = ("dir", work, None)
            else:
                raise ContextError(f"build context {name}: unknown kind {context.kind!r}")
        yield out
