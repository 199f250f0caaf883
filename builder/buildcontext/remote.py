"""Fetching remote contexts: git repositories with the git binary, http(s) files with httpx.

Git, as BuildKit's git source: the ref (branch, tag or commit; the remote's HEAD when none) is
fetched shallowly where the server allows it (dumb http does not, and some servers refuse commits
by hash: then the full history is fetched), checked out detached, submodules updated, and the
``.git`` directory removed unless ``keep-git-dir`` asks to keep it. git never prompts (no terminal
in a build); its own error text is reported.

Temp directories live in the store's ``tmp/`` with the store's ownership protocol (an flock held
while in use), so a killed build's leftovers are swept by the next store open; they are removed when
the context is closed, whatever happened.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from contextlib import contextmanager
from pathlib import Path

from .errors import ContextError
from .location import GitRef

CHUNK = 1 << 20


@contextmanager
def temp_dir(tmp_dir: str | None, prefix: str):
    """A new empty directory, removed on exit (also after an error or an interrupt)."""
    entry = None
    if tmp_dir is not None:
        from cache.tempfiles import create_dir

        os.makedirs(tmp_dir, exist_ok=True)
        entry = create_dir(Path(tmp_dir), prefix)
        path = str(entry.path)
    else:
        import tempfile

        path = tempfile.mkdtemp(prefix=f"pybuild-{prefix}")
    try:
        yield path
    finally:
        _remove_tree(path)
        if entry is not None:
            entry.release()


def _remove_tree(path: str) -> None:
    def retry(func, failed, _exc):
        parent = os.path.dirname(failed)
        try:
            os.chmod(parent, 0o700)             # a read-only directory from a tar or git checkout
            func(failed)
        except FileNotFoundError:
            pass

    shutil.rmtree(path, onerror=retry)


# ----------------------------------------------------------------------------------------------
# git


def _git(args: list[str], cwd: str | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, GIT_TERMINAL_PROMPT="0", GIT_ASKPASS="/bin/true", LC_ALL="C")
    try:
        return subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise ContextError("git is needed for a git build context, and it is not installed") from None


def _stderr(result: subprocess.CompletedProcess) -> str:
    text = result.stderr.decode("utf-8", "replace").strip()
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("hint:")]
    return "; ".join(lines[-3:]) or f"git exited with status {result.returncode}"


def git_checkout(ref: GitRef, dest: str) -> str:
    """Check ``ref`` out into the empty directory ``dest``; the commit hash."""
    def run(*args: str) -> subprocess.CompletedProcess:
        return _git(list(args), cwd=dest)

    def need(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
        if result.returncode != 0:
            raise ContextError(f"failed to fetch remote {ref.remote}: {_stderr(result)}")
        return result

    need(run("init", "-q"))
    need(run("remote", "add", "origin", ref.remote))
    wanted = ref.ref or "HEAD"
    if run("fetch", "-q", "--depth=1", "--no-tags", "origin", wanted).returncode == 0:
        target = "FETCH_HEAD"
    else:
        # a dumb server, or a commit a server will not serve by hash: everything, then resolve
        need(run("fetch", "-q", "--tags", "origin", "+refs/heads/*:refs/remotes/origin/*"))
        target = ""
        if ref.ref:
            branch = ref.ref.removeprefix("refs/heads/")
            for candidate in (ref.ref, f"origin/{branch}", f"refs/tags/{ref.ref}"):
                if run("rev-parse", "-q", "--verify", f"{candidate}^{{commit}}").returncode == 0:
                    target = candidate
                    break
            if not target:
                raise ContextError(f"failed to fetch remote {ref.remote}: no branch, tag or commit {ref.ref!r}")
        else:
            need(run("fetch", "-q", "origin", "HEAD"))
            target = "FETCH_HEAD"
    need(run("-c", "advice.detachedHead=false", "checkout", "-q", "--detach", f"{target}^{{commit}}"))
    commit = need(run("rev-parse", "HEAD")).stdout.decode().strip()
    if ref.checksum and not commit.startswith(ref.checksum):
        raise ContextError(f"expected checksum to match {ref.checksum}, got {commit}")
    if os.path.exists(os.path.join(dest, ".gitmodules")):
        if run("submodule", "update", "--init", "--recursive", "--depth=1").returncode != 0:
            need(run("submodule", "update", "--init", "--recursive"))
    if not ref.keep_git_dir:
        _remove_tree(os.path.join(dest, ".git"))
    return commit


def git_context(ref: GitRef, dest: str) -> str:
    """Check ``ref`` out below ``dest``; the context root (its subdir, when it names one)."""
    checkout = os.path.join(dest, "repo")
    os.mkdir(checkout)
    git_checkout(ref, checkout)
    if not ref.subdir:
        return checkout
    root = os.path.realpath(os.path.join(checkout, ref.subdir))
    if not root.startswith(os.path.realpath(checkout) + os.sep) or not os.path.isdir(root):
        raise ContextError(f"unable to prepare context: {ref.subdir!r} is not a directory in {ref.remote}")
    return root


# ----------------------------------------------------------------------------------------------
# http


@contextmanager
def http_stream(url: str):
    """The response body of ``url`` as a reader (redirects followed; an error status is an error)."""
    import httpx

    try:
        with httpx.Client(follow_redirects=True, timeout=httpx.Timeout(30.0, read=300.0)) as client:
            with client.stream("GET", url) as response:
                if response.status_code >= 400:
                    raise ContextError(f"unable to prepare context: failed to download {url}: "
                                       f"invalid response status {response.status_code}")
                yield _Body(response.iter_bytes(CHUNK))
    except httpx.HTTPError as err:
        raise ContextError(f"unable to prepare context: failed to download {url}: {err}") from None


class _Body:
    """A file-like reader over an iterator of byte chunks."""

    def __init__(self, chunks):
        self.chunks = chunks
        self.buffer = b""

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            data = self.buffer + b"".join(self.chunks)
            self.buffer = b""
            return data
        while len(self.buffer) < size:
            chunk = next(self.chunks, None)
            if chunk is None:
                break
            self.buffer += chunk
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data


def download(url: str, dest_file: str) -> None:
    """Save the body of ``url`` in ``dest_file``."""
    with http_stream(url) as body, open(dest_file, "wb") as out:
        while chunk := body.read(CHUNK):
            out.write(chunk)
