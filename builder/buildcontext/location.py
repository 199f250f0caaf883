"""What a context location names: stdin, a local directory, a git repository or an http(s) URL.

The order is buildx's: ``-`` is stdin, an existing directory is a directory (even when its name
looks like a URL), then a remote URL. A remote URL is a git repository when BuildKit's
``ParseGitRef`` accepts it (``git://``, ``ssh://``, ``git@host:path``, ``http(s)://…`` whose path
ends in ``.git``, the deprecated ``github.com/…``), else an http(s) URL is a file to download.
Git URLs carry ``#ref:subdir`` and the query forms ``?ref= &tag= &branch= &subdir= &checksum=
&keep-git-dir=``.
"""

from __future__ import annotations

import os
import posixpath
import re
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit, urlunsplit

from ..gotext import go_quote
from .errors import ContextError

_PROTO = re.compile(r"^[a-zA-Z0-9]+://")
_GIT_PROTOCOLS = ("http", "https", "ssh", "git")
_SCP = re.compile(r"^([a-zA-Z0-9-_]+)@([a-zA-Z0-9-.]+):(.*?)(?:\?(.*?))?(?:#(.*))?$")


@dataclass(frozen=True)
class GitRef:
    """A git repository location: the remote git fetches from, the ref and subdir to use."""

    remote: str
    ref: str = ""
    subdir: str = ""
    checksum: str = ""
    keep_git_dir: bool = False


def _fragment(fragment: str) -> tuple[str, str]:
    ref, _, subdir = fragment.partition(":")
    subdir = posixpath.normpath("/" + subdir).lstrip("/") if subdir else ""
    return ref, subdir


def _apply_query(ref: GitRef, query: str) -> GitRef:
    if not query:
        return ref
    values = parse_qs(query, keep_blank_values=True)
    fields = {"ref": ref.ref, "subdir": ref.subdir, "checksum": ref.checksum, "keep_git_dir": ref.keep_git_dir}
    tag = branch = ""
    for key, items in values.items():
        if len(items) > 1:
            raise ContextError(f"invalid git URL {ref.remote!r}: query {key!r} has multiple values")
        value = items[0]
        if not value and key not in ("keep-git-dir", "submodules"):
            raise ContextError(f"invalid git URL {ref.remote!r}: query {key!r} has no value")
        if key == "ref":
            if fields["ref"] and fields["ref"] != value:
                raise ContextError(f"ref conflicts: {fields['ref']!r} vs {value!r}")
            fields["ref"] = value
        elif key == "tag":
            tag = value if value.startswith("refs/tags/") else "refs/tags/" + value
        elif key == "branch":
            branch = value if value.startswith("refs/heads/") else "refs/heads/" + value
        elif key == "subdir":
            fields["subdir"] = _fragment(":" + value)[1]
        elif key in ("checksum", "commit"):
            fields["checksum"] = value
        elif key == "keep-git-dir":
            fields["keep_git_dir"] = value.lower() in ("", "1", "t", "true")
        elif key == "submodules":
            pass
        else:
            raise ContextError(f"invalid git URL {ref.remote!r}: unexpected query {key!r}")
    for wanted in (tag, branch):
        if wanted:
            if fields["ref"] and fields["ref"] != wanted:
                raise ContextError(f"ref conflicts: {fields['ref']!r} vs {wanted!r}")
            fields["ref"] = wanted
    return GitRef(ref.remote, **fields)


def parse_git_ref(location: str) -> GitRef | None:
    """The git repository ``location`` names, or None when it names none (BuildKit's ParseGitRef)."""
    if location.startswith(("./", "../")):
        return None
    if location.startswith("github.com/"):
        location = "https://" + location
        deprecated = True
    else:
        deprecated = False
    proto = _PROTO.match(location)
    if proto:
        scheme = proto.group(0)[:-3].lower()
        if scheme not in _GIT_PROTOCOLS:
            return None
        parts = urlsplit(location)
        if scheme in ("http", "https") and not parts.path.endswith(".git") and not deprecated:
            return None
        remote = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
        ref, subdir = _fragment(parts.fragment)
        return _apply_query(GitRef(remote, ref, subdir), parts.query)
    m = _SCP.match(location)
    if m is None:
        return None
    user, host, path, query, fragment = m.groups()
    ref, subdir = _fragment(fragment or "")
    return _apply_query(GitRef(f"{user}@{host}:{path}", ref, subdir), query or "")


def is_http_url(location: str) -> bool:
    return bool(re.match(r"^https?://", location, re.I))


def is_remote(location: str) -> bool:
    """buildx's ``IsRemoteURL``: a URL to fetch or a git repository."""
    return is_http_url(location) or parse_git_ref(location) is not None


def classify(location: str) -> str:
    """``stdin``, ``dir``, ``git`` or ``url``; ContextError for anything else."""
    if location == "-":
        return "stdin"
    if os.path.isdir(location):
        return "dir"
    if parse_git_ref(location) is not None:
        return "git"
    if is_http_url(location):
        return "url"
    raise ContextError(f"unable to prepare context: path {go_quote(location)} not found")
