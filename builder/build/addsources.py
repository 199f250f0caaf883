"""ADD's remote sources and archives: http(s) downloads, git repositories, local tar archives.

As BuildKit does it:

* ``ADD https://host/path/name.tgz /dest``: the file is named after the URL path's last element
  (``__unnamed__`` when there is none; Content-Disposition is not used since the Dockerfile frontend
  names the file), mode 0600, mtime from ``Last-Modified``; never extracted unless ``--unpack``.
  ``--checksum=sha256:...`` is verified ("digest mismatch for URL: got (expected: want)"); without
  it the cache key is the downloaded content's digest (BuildKit downloads again and compares).
* ``ADD https://host/repo.git#ref:subdir /dest`` (also ``git@host:repo``, ``ssh://``, ``git://``,
  ``?ref=&subdir=&keep-git-dir=`` queries): a shallow fetch of the ref with the git binary; the
  cache key is the commit; ``.git`` is dropped unless ``--keep-git-dir``.
* a local file that is a tar (plain, gzip, bzip2, xz or zstd, recognised by content, not name) is
  extracted into the destination directory with the unpacker's rules: ``..`` rejected, absolute
  names and symlinks contained inside the target.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

# tarfile, subprocess, shutil, email are imported where used: a COPY of local files (the hot path of
# a rebuild) loads this module only to tell a URL or git source from a path.

from .copyops import CopyError

# ----------------------------------------------------------------------------------------------
# classification


@dataclass(frozen=True)
class GitRef:
    remote: str
    ref: str = ""
    subdir: str = ""
    keep_git_dir: bool | None = None
    checksum: str = ""


def is_http(source: str) -> bool:
    return source.startswith(("http://", "https://")) and parse_git(source) is None


def parse_git(source: str) -> GitRef | None:
    """A git source as BuildKit's ``ParseGitRef`` recognises it; None for anything else."""
    scp = re.fullmatch(r"([A-Za-z0-9_.-]+@[A-Za-z0-9_.-]+):(?!//)([^#]*)(#.*)?", source)
    if scp:
        remote, fragment = f"{scp.group(1)}:{scp.group(2)}", (scp.group(3) or "")[1:]
        query = {}
    else:
        parts = urlsplit(source)
        if parts.scheme not in ("http", "https", "git", "ssh") or not parts.netloc:
            return None
        if parts.scheme in ("http", "https") and not parts.path.endswith(".git"):
            return None
        remote = f"{parts.scheme}://{parts.netloc}{parts.path}"
        fragment = parts.fragment
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    ref, _, subdir = fragment.partition(":")
    keep = None
    if "keep-git-dir" in query:
        keep = query["keep-git-dir"] in ("", "1", "true", "True")
    ref = query.get("ref") or query.get("tag") or query.get("branch") or ref
    subdir = query.get("subdir") or subdir
    return GitRef(remote, ref, subdir.strip("/"), keep, query.get("checksum") or query.get("commit") or "")


def url_filename(url: str) -> str:
    path = unquote(urlsplit(url).path)
    base = path.rstrip("/").rpartition("/")[2] if path.rstrip("/") else ""
    return base if base not in ("", ".", "/") else "__unnamed__"


# ----------------------------------------------------------------------------------------------
# http


def download(url: str, directory: str, *, checksum: str = "", report=None) -> tuple[str, str]:
    """Fetch ``url`` into ``directory`` under its file name; (path, "sha256:...") of the file."""
    from email.utils import parsedate_to_datetime

    import httpx

    name = url_filename(url)
    path = os.path.join(directory, name)
    hasher = hashlib.sha256()
    try:
        with httpx.stream("GET", url, follow_redirects=True, timeout=httpx.Timeout(60.0, connect=30.0)) as resp:
            if resp.status_code < 200 or resp.status_code >= 400:
                raise CopyError(f"failed to load {url}: invalid response status {resp.status_code}")
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            with os.fdopen(fd, "wb") as out:
                for chunk in resp.iter_bytes(1 << 20):
                    hasher.update(chunk)
                    out.write(chunk)
                    if report is not None:
                        report(len(chunk))
            os.chmod(path, 0o600)
            modified = resp.headers.get("last-modified")
    except httpx.HTTPError as err:
        raise CopyError(f"failed to load {url}: {err}") from None
    digest = "sha256:" + hasher.hexdigest()
    if checksum and checksum != digest:
        os.unlink(path)
        raise CopyError(f"digest mismatch for {url}: {digest} (expected: {checksum})")
    if modified:
        try:
            when = parsedate_to_datetime(modified).timestamp()
            os.utime(path, (when, when))
        except (TypeError, ValueError, OverflowError):
            pass
    return path, digest


def check_checksum_syntax(checksum: str) -> None:
    if checksum and not re.fullmatch(r"sha256:[0-9a-f]{64}|sha384:[0-9a-f]{96}|sha512:[0-9a-f]{128}", checksum):
        raise CopyError(f"invalid checksum digest format: {checksum!r}")


# ----------------------------------------------------------------------------------------------
# git


def _git(args: list[str], cwd: str | None = None) -> str:
    import subprocess

    env = dict(os.environ, GIT_TERMINAL_PROMPT="0", GIT_CONFIG_NOSYSTEM="1", HOME="/nonexistent",
               GIT_PROTOCOL_FROM_USER="0", LC_ALL="C")
    result = subprocess.run(["git", "-c", "protocol.file.allow=always", *args], cwd=cwd, env=env,
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise CopyError(f"git {args[0]} failed: {result.stderr.strip() or result.stdout.strip()}")
    return result.stdout


def resolve_commit(ref: GitRef) -> str:
    """The commit a git source names (its cache key), from ``git ls-remote``."""
    if ref.checksum and re.fullmatch(r"[0-9a-f]{40}|[0-9a-f]{64}", ref.checksum):
        return ref.checksum
    if re.fullmatch(r"[0-9a-f]{40}", ref.ref):
        return ref.ref
    wanted = ref.ref or "HEAD"
    out = _git(["ls-remote", ref.remote, wanted] + ([f"refs/tags/{wanted}^{{}}"] if ref.ref else []))
    found = {}
    for line in out.splitlines():
        sha, _, name = line.partition("\t")
        found[name] = sha
    for name in (f"refs/tags/{wanted}^{{}}", f"refs/tags/{wanted}", f"refs/heads/{wanted}", wanted):
        if name in found:
            commit = found[name]
            break
    else:
        raise CopyError(f"failed to resolve git ref {wanted!r} of {ref.remote}")
    if ref.checksum and not commit.startswith(ref.checksum):
        raise CopyError(f"expected checksum to match {ref.checksum}, got {commit}")
    return commit


def checkout(ref: GitRef, commit: str, directory: str, *, keep_git_dir: bool) -> str:
    """The files of ``commit`` in ``directory`` (the repository's ``subdir`` path returned)."""
    import shutil

    _git(["init", "-q", directory])
    _git(["remote", "add", "origin", ref.remote], cwd=directory)
    try:
        _git(["fetch", "-q", "--depth=1", "origin", commit], cwd=directory)
    except CopyError:
        _git(["fetch", "-q", "origin", ref.ref or "HEAD"], cwd=directory)     # servers that refuse a sha
    _git(["-c", "advice.detachedHead=false", "checkout", "-q", commit], cwd=directory)
    if not keep_git_dir:
        shutil.rmtree(os.path.join(directory, ".git"))
    return ref.subdir


# ----------------------------------------------------------------------------------------------
# archives


def is_archive(path: str) -> bool:
    """BuildKit's ``isArchivePath``: a regular file whose (decompressed) start is a tar header."""
    import tarfile

    from ..fs.compress import open_decompressed, read_up_to

    try:
        with open(path, "rb") as fh:
            reader, _ = open_decompressed(fh)
            head = read_up_to(reader, 512)
    except Exception:  # noqa: BLE001  (any corrupt stream is simply not an archive)
        return False
    if len(head) < 512:
        return False
    try:
        tarfile.TarInfo.frombuf(head, "utf-8", "surrogateescape")
    except tarfile.HeaderError:
        return False
    return True


def extract(path: str, directory: str) -> None:
    """Unpack an archive into an empty directory (owners, modes, times and xattrs as in the tar)."""
    from ..errors import LayerError
    from ..fs.unpack import unpack_layer

    try:
        with open(path, "rb") as fh:
            unpack_layer(fh, directory, mode="apply")
        if _has_hardlinks(directory):
            _hardlink_headers(path, directory)
    except LayerError as err:
        raise CopyError(f"failed to extract {os.path.basename(path)}: {err.message}") from None


def _has_hardlinks(directory: str) -> bool:
    for dirpath, _, filenames in os.walk(directory):
        for name in filenames:
            st = os.lstat(os.path.join(dirpath, name))
            if st.st_nlink > 1 and not os.path.islink(os.path.join(dirpath, name)):
                return True
    return False


def _hardlink_headers(path: str, directory: str) -> None:
    """Docker's untar gives a hardlink's inode the owner and mode of the hardlink's own header
    (the last one wins); the unpacker keeps the first file's. Apply them as Docker does."""
    import tarfile

    from ..fs.compress import open_decompressed
    from ..fs.safepath import safe_join

    with open(path, "rb") as fh:
        reader, _ = open_decompressed(fh)
        with tarfile.open(fileobj=reader, mode="r|") as tar:
            for member in tar:
                if not member.islnk():
                    continue
                target = safe_join(directory, member.name)
                if os.path.lexists(target):
                    os.lchown(target, member.uid, member.gid)
                    os.chmod(target, member.mode & 0o7777)
