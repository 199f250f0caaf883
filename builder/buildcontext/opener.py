"""Opening the main build context and its Dockerfile, as ``docker build`` (buildx + BuildKit) does.

Locations (``location.classify``): a directory; ``-``, stdin holding a tar (plain or compressed,
unpacked into a temp dir, the Dockerfile read from inside it) or a Dockerfile (then there is no
context); a git URL (checked out, ``.git`` removed); an http(s) URL of a tarball (unpacked) or of a
plain Dockerfile (the context is then a directory holding only that file, named ``context``, as
BuildKit makes it).

``-f``: for a directory context a path relative to the current directory (default
``CONTEXT/Dockerfile``, or ``CONTEXT/dockerfile`` when only that exists); for the other contexts a
path inside the context; ``-`` reads the Dockerfile from stdin; an http(s) URL is downloaded.

``.dockerignore``: for a directory context ``<Dockerfile>.dockerignore`` next to the Dockerfile
when it exists, else ``CONTEXT/.dockerignore``. BuildKit applies ignore files to local contexts
only: a git, URL or stdin-tar context is sent whole, so those get no rules here either.

Everything fetched or unpacked lives in a temp dir that is removed when the ``with`` block ends,
whether the build succeeded, failed or was interrupted.
"""

from __future__ import annotations

import os
import sys
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

from .errors import ContextError
from .ignore import IgnoreRules

KINDS = ("dir", "stdin-tar", "stdin-dockerfile", "git", "url-tar", "url-dockerfile")


@dataclass(frozen=True)
class BuildContext:
    """An opened build context: what the build reads, and what it must not."""

    kind: str                       # one of KINDS
    root: str | None                # the context directory; None when there is none (a Dockerfile on stdin)
    dockerfile: bytes
    dockerfile_name: str            # for messages: the path given, or the name inside a remote context
    ignore: IgnoreRules | None      # None: nothing is excluded
    ignore_file: str | None = None  # the file the rules came from
    location: str = ""              # the location as given

    @property
    def local(self) -> bool:
        """A directory on this machine that the next build may read again (the memo's case)."""
        return self.kind == "dir"


def read_ignore_rules(context_dir: str, dockerfile_path: str | None = None) -> tuple[IgnoreRules | None, str | None]:
    """The rules for a local context: ``<Dockerfile>.dockerignore`` first, then ``.dockerignore``.

    An unreadable or missing file means no rules (BuildKit ignores the read error); an empty one too.
    """
    candidates = []
    if dockerfile_path:
        candidates.append(dockerfile_path + ".dockerignore")
    candidates.append(os.path.join(context_dir, ".dockerignore"))
    for path in candidates:
        try:
            with open(path, "rb") as fh:
                data = fh.read()
        except OSError:
            continue
        rules = IgnoreRules.parse(data, source=path)
        return (rules if rules else None), path
    return None, None


def _read_file(path: str, shown: str) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError as err:
        raise ContextError(f"failed to read Dockerfile {shown}: {err.strerror}") from None


def _dockerfile_in(root: str, option: str | None) -> tuple[bytes, str]:
    """The Dockerfile at ``option`` inside a fetched context (symlinks resolved inside it)."""
    from ..fs.safepath import resolve
    from .ignore import go_clean

    name = go_clean("/" + (option or "Dockerfile")).lstrip("/")
    candidates = [name]
    if option is None:
        candidates.append("dockerfile")
    for candidate in candidates:
        path = resolve(os.path.realpath(root), candidate.split("/"), follow_final=True)
        if os.path.isfile(path):
            return _read_file(path, candidate), candidate
    raise ContextError(f"failed to read Dockerfile {name}: No such file or directory")


def _read_stdin(stdin) -> bytes:
    return (stdin if stdin is not None else sys.stdin.buffer).read()


def _url_dockerfile(url: str) -> bytes:
    """``-f https://…``: the Dockerfile downloaded (buildx's createTempDockerfileFromURL)."""
    from .remote import http_stream

    with http_stream(url) as body:
        return body.read()


@contextmanager
def open_build_context(location: str, dockerfile_option: str | None = None, *, stdin=None,
                       tmp_dir: str | None = None):
    """The build context at ``location`` with its Dockerfile (``-f``), as a ``BuildContext``.

    ``stdin``: a binary reader for ``-`` (default: the process's stdin). ``tmp_dir``: where fetched
    or unpacked contexts go (the store's ``tmp/``; default: the system's).
    """
    from .location import classify, is_http_url, parse_git_ref

    kind = classify(location)
    if kind == "stdin" and dockerfile_option == "-":
        raise ContextError("invalid argument: can't use stdin for both build context and dockerfile")
    with ExitStack() as stack:
        given: tuple[bytes, str] | None = None
        if dockerfile_option == "-":
            given = (_read_stdin(stdin), "Dockerfile")
        elif dockerfile_option is not None and is_http_url(dockerfile_option):
            given = (_url_dockerfile(dockerfile_option), "Dockerfile")

        if kind == "dir":
            yield _directory(location, dockerfile_option, given)
            return

        from .remote import temp_dir

        if kind == "stdin":
            yield _stdin(location, dockerfile_option, given, stdin, stack, tmp_dir)
            return
        work = stack.enter_context(temp_dir(tmp_dir, "context-"))
        if kind == "git":
            from .remote import git_context

            root = git_context(parse_git_ref(location), work)
            data, name = given or _dockerfile_in(root, dockerfile_option)
            yield BuildContext("git", root, data, name, None, None, location)
            return
        yield _url(location, dockerfile_option, given, work)


def _directory(location: str, option: str | None, given) -> BuildContext:
    if given is not None:
        data, name = given
        ignore, ignore_file = read_ignore_rules(location)
        return BuildContext("dir", location, data, name, ignore, ignore_file, location)
    path = option if option is not None else os.path.join(location, "Dockerfile")
    requested = path
    if option is None and not os.path.exists(path) and os.path.exists(os.path.join(location, "dockerfile")):
        path = os.path.join(location, "dockerfile")
    data = _read_file(path, path)
    ignore, ignore_file = read_ignore_rules(location, requested)
    return BuildContext("dir", location, data, path, ignore, ignore_file, location)


def _stdin(location: str, option: str | None, given, stdin, stack: ExitStack, tmp_dir: str | None) -> BuildContext:
    from .archive import extract, is_archive, peek
    from .remote import temp_dir

    head, stream = peek(stdin if stdin is not None else sys.stdin.buffer)
    if not head:
        raise ContextError("unable to prepare context: stdin is empty (expected a tar archive or a Dockerfile)")
    if not is_archive(head):
        if option is not None:
            raise ContextError("ambiguous Dockerfile source: both stdin and flag correspond to Dockerfiles")
        return BuildContext("stdin-dockerfile", None, stream.read(), "Dockerfile", None, None, location)
    root = stack.enter_context(temp_dir(tmp_dir, "context-"))
    extract(stream, root, what="the context archive on stdin")
    data, name = given or _dockerfile_in(root, option)
    return BuildContext("stdin-tar", root, data, name, None, None, location)


def _url(location: str, option: str | None, given, work: str) -> BuildContext:
    from .archive import extract, is_archive, peek
    from .remote import http_stream

    root = os.path.join(work, "context")
    os.mkdir(root)
    with http_stream(location) as body:
        head, stream = peek(body)
        if is_archive(head):
            extract(stream, root, what=f"the archive at {location}")
            archive = True
        else:
            with open(os.path.join(root, "context"), "wb") as out:
                while chunk := stream.read(1 << 20):
                    out.write(chunk)
            archive = False
    if archive:
        data, name = given or _dockerfile_in(root, option)
        return BuildContext("url-tar", root, data, name, None, None, location)
    # BuildKit: a URL that is no archive is the Dockerfile itself, in a context of that one file
    if given is not None:
        data, name = given
    else:
        data, name = _read_file(os.path.join(root, "context"), "context"), "context"
    return BuildContext("url-dockerfile", root, data, name, None, None, location)
