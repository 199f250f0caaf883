"""Build contexts on real builds (``pybuild build`` as a user runs it, temporary stores):

* .dockerignore: ignored files (``.env``, ``.git``) never reach the image, and changing them keeps
  every step CACHED and the no-op memo valid; changing .dockerignore itself rebuilds;
  ``<Dockerfile>.dockerignore`` wins over ``.dockerignore``; CopyIgnoredFile in builds and in
  ``pybuild check CONTEXT``;
* contexts from ``-`` (a tar, plain or compressed, or a Dockerfile), from a git repository served
  over git's dumb http protocol on 127.0.0.1, from an http tarball URL and an http Dockerfile URL;
* ``--build-context`` with a directory, a git URL and an http URL;
* no temp dir left in the store after a build, failed or not;
* an unchanged 20,000-file context is rebuilt without reading one file (inotify sees no open).
"""

from __future__ import annotations

import bz2
import ctypes
import ctypes.util
import gzip
import hashlib
import io
import lzma
import os
import struct
import subprocess
import tarfile
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from image_fixtures import ok, pb
from test_build_engine import build, built, image_tree, saved_images, step_states, store, write_context  # noqa: F401
from test_build_engine_run import _wait_for

NOOP = "#0 CACHED (nothing changed since the last identical build)"


def files_of(root: Path, tag: str, tmp_path: Path) -> dict[str, str]:
    """path -> sha256 of content ("dir" for directories) of the image ``tag``."""
    image = saved_images(root, [tag], tmp_path / f"{tag.replace(':', '_').replace('/', '_')}.tar")[
        tag if ":" in tag else tag + ":latest"]
    return {p: (e.get("sha256") or e["type"]) for p, e in image_tree(image).items()}


def fails(result) -> str:
    """The progress and error text of a build that must fail (exit 1, an ``error:`` line, no traceback)."""
    stderr = result.stderr.decode(errors="replace")
    assert result.returncode == 1, stderr
    assert "Traceback" not in stderr and "\nerror: " in "\n" + stderr, stderr
    return stderr


def sha(text: str | bytes) -> str:
    return hashlib.sha256(text.encode() if isinstance(text, str) else text).hexdigest()


def store_temp_entries(root: Path) -> list[str]:
    tmp = root / "tmp"
    return sorted(os.listdir(tmp)) if tmp.exists() else []


# ----------------------------------------------------------------------------------------------
# .dockerignore


def test_ignored_files_never_enter_the_image_or_a_cache_key(tmp_path, store):
    ctx = write_context(tmp_path / "ctx", "FROM busybox\nCOPY . /app/\nRUN ls -a /app > /listing\n", {
        ".env": "API_KEY=secret-1\n", ".git/HEAD": "ref: refs/heads/main\n", ".git/objects/ab/cdef": "blob",
        "src/app.py": "print('hi')\n", ".dockerignore": "# secrets and VCS\n.env\n.git\n"})
    first, progress = built(build(store, ctx, "-t", "ignore-demo:1"))
    files = files_of(store, "ignore-demo:1", tmp_path)
    assert files["app/src/app.py"] == sha("print('hi')\n") and "app/.dockerignore" in files
    assert not [p for p in files if p.startswith(("app/.env", "app/.git"))]
    listing = ok(pb(store, "run", "--rm", "--network", "none", "ignore-demo:1", "cat", "/listing"))
    assert ".env" not in listing.split() and ".git" not in listing.split() and "src" in listing.split()

    # ignored files change (content, new files inside an ignored directory): nothing is rebuilt
    (ctx / ".env").write_text("API_KEY=secret-2-rotated\n")
    (ctx / ".git" / "HEAD").write_text("ref: refs/heads/other\n")
    (ctx / ".git" / "objects" / "new").write_text("x")
    again, progress = built(build(store, ctx, "-t", "ignore-demo:1"))
    assert again == first and NOOP in progress                       # the memo still holds
    engine, progress = built(build(store, ctx, "-t", "ignore-demo:1", env={"PYBUILD_NO_MEMO": "1"}))
    assert engine == first and set(step_states(progress).values()) == {"CACHED"}
    assert b"secret-2" not in (store / "cache" / "stat-cache.json").read_bytes() if (
        store / "cache" / "stat-cache.json").exists() else True

    # .dockerignore itself changes: a new request (no memo), the COPY runs again and .git comes in
    (ctx / ".dockerignore").write_text(".env\n")
    changed, progress = built(build(store, ctx, "-t", "ignore-demo:1"))
    assert NOOP not in progress and changed != first
    assert step_states(progress)["COPY . /app/"] == "DONE"
    files = files_of(store, "ignore-demo:1", tmp_path)
    assert files["app/.git/HEAD"] == sha("ref: refs/heads/other\n") and "app/.env" not in files


def test_dockerfile_specific_ignore_file_wins(tmp_path, store):
    ctx = write_context(tmp_path / "ctx", "FROM scratch\nCOPY . /\n", {
        "a.txt": "a", "b.txt": "b", ".dockerignore": "a.txt\n"})
    (tmp_path / "ci.Dockerfile").write_text("FROM scratch\nCOPY . /\n")
    (tmp_path / "ci.Dockerfile.dockerignore").write_text("b.txt\n*.Dockerfile*\n")
    built(build(store, ctx, "-t", "ignore-default:1"))
    built(build(store, ctx, "-t", "ignore-specific:1", "-f", str(tmp_path / "ci.Dockerfile")))
    assert {"b.txt", "Dockerfile"} <= set(files_of(store, "ignore-default:1", tmp_path)) and \
        "a.txt" not in files_of(store, "ignore-default:1", tmp_path)
    specific = files_of(store, "ignore-specific:1", tmp_path)
    assert "a.txt" in specific and "b.txt" not in specific


def test_exceptions_and_an_ignored_dockerfile(tmp_path, store):
    """BuildKit reads the Dockerfile even when .dockerignore excludes it; it is just not in the context."""
    ctx = write_context(tmp_path / "ctx", "FROM scratch\nCOPY . /\n", {
        "docs/README.md": "readme", "docs/notes.md": "notes", "bay": "y", "baz": "z",
        ".dockerignore": "docs\n!docs/README.md\nba*\n!bay\nDockerfile\n.dockerignore\n"})
    built(build(store, ctx, "-t", "ignore-exceptions:1"))
    assert set(files_of(store, "ignore-exceptions:1", tmp_path)) == {"docs", "docs/README.md", "bay"}


def test_copy_ignored_file_check(tmp_path, store):
    ctx = write_context(tmp_path / "ctx", "FROM scratch\nCOPY app.txt /\nCOPY .env /\n", {
        "app.txt": "app", ".env": "secret", ".dockerignore": ".env\n"})
    out = fails(build(store, ctx))
    assert ' - CopyIgnoredFile: Attempting to Copy file ".env" that is excluded by .dockerignore (line 3)' in out
    assert '"/.env": not found' in out
    check = pb(store, "check", str(ctx))
    assert check.returncode == 1 and "WARNING: CopyIgnoredFile - https://docs.docker.com/go/dockerfile/rule/" \
        "copy-ignored-file/\nAttempting to Copy file \".env\" that is excluded by .dockerignore" in check.stdout.decode()
    assert pb(store, "check", "-f", str(ctx / "Dockerfile")).returncode == 0       # no context: not checked
    # check=error=true: the build fails before any step runs
    (ctx / "Dockerfile").write_text("# check=error=true\nFROM scratch\nCOPY app.txt /\nCOPY .env /\n")
    out = fails(build(store, ctx))
    assert "lint violation found for rules: CopyIgnoredFile" in out and "COPY app.txt" not in out
    # skipped, or exceptions in the file (BuildKit does not guess then): no warning
    (ctx / "Dockerfile").write_text("# check=skip=CopyIgnoredFile\nFROM scratch\nCOPY app.txt /\n")
    assert "CopyIgnoredFile" not in built(build(store, ctx))[1]


# ----------------------------------------------------------------------------------------------
# stdin


def _tar(files: dict[str, str], *, fmt=tarfile.GNU_FORMAT) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        for name, content in sorted(files.items()):
            data = content.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o640, 1_600_000_000
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _zstd(data: bytes) -> bytes:
    import zstandard

    return zstandard.ZstdCompressor().compress(data)


COMPRESSIONS = {"plain": lambda d: d, "gzip": gzip.compress, "bzip2": bz2.compress, "xz": lzma.compress,
                "zstd": _zstd}


@pytest.mark.parametrize("compression", sorted(COMPRESSIONS))
def test_build_from_a_tar_on_stdin(tmp_path, store, compression):
    data = COMPRESSIONS[compression](_tar({
        "Dockerfile": "FROM scratch\nCOPY . /ctx/\n", "src/main.c": "int main(){}\n", ".env": "sent whole\n",
        ".dockerignore": ".env\n"}, fmt=tarfile.PAX_FORMAT if compression == "gzip" else tarfile.GNU_FORMAT))
    result = pb(store, "build", "--progress", "plain", "-t", f"stdin-{compression}:1", "-", input=data)
    built(result)
    files = files_of(store, f"stdin-{compression}:1", tmp_path)
    assert files["ctx/src/main.c"] == sha("int main(){}\n")
    # as with docker+BuildKit: a tar (a remote context) is sent whole, .dockerignore is not applied to it
    assert files["ctx/.env"] == sha("sent whole\n")
    assert store_temp_entries(store) == []


def test_stdin_tar_with_f_inside_it(tmp_path, store):
    data = _tar({"build/app.Dockerfile": "FROM scratch\nCOPY build/data.txt /\n", "build/data.txt": "d"})
    built(pb(store, "build", "-t", "stdin-f:1", "-f", "build/app.Dockerfile", "-", input=data))
    assert files_of(store, "stdin-f:1", tmp_path)["data.txt"] == sha("d")


def test_dockerfile_on_stdin(tmp_path, store):
    built(pb(store, "build", "-t", "stdin-df:1", "-", input=b"FROM scratch\nLABEL from=stdin\n"))
    config = saved_images(store, ["stdin-df:1"], tmp_path / "s.tar")["stdin-df:1"]["config"]
    assert config["config"]["Labels"] == {"from": "stdin"}
    out = fails(pb(store, "build", "-", input=b"FROM scratch\nCOPY x /\n"))
    assert "no context" in out and "Dockerfile:2" in out
    # -f - with a directory: the directory is the context, its .dockerignore applies
    ctx = write_context(tmp_path / "ctx", "unused\n", {"keep.txt": "k", "skip.txt": "s", ".dockerignore": "skip*\n"})
    built(pb(store, "build", "-t", "stdin-f-dash:1", "-f", "-", str(ctx), input=b"FROM scratch\nCOPY . /\n"))
    files = files_of(store, "stdin-f-dash:1", tmp_path)
    assert "keep.txt" in files and "skip.txt" not in files
    assert "can't use stdin for both build context and dockerfile" in fails(pb(store, "build", "-f", "-", "-",
                                                                                input=b"FROM scratch\n"))
    assert store_temp_entries(store) == []


def test_unsafe_or_bad_stdin(tmp_path, store):
    evil = _tar({"../../escape.txt": "x", "Dockerfile": "FROM scratch\n"})
    out = fails(pb(store, "build", "-", input=evil))
    assert "cannot unpack the context archive on stdin" in out
    assert not (store.parent / "escape.txt").exists() and store_temp_entries(store) == []
    assert 'unable to prepare context: path "no-such-dir" not found' in fails(pb(store, "build", "no-such-dir"))


# ----------------------------------------------------------------------------------------------
# servers: plain files and git's dumb http protocol


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def http_root(tmp_path_factory):
    """(directory served, base URL) of an http server on 127.0.0.1 for this module."""
    root = tmp_path_factory.mktemp("served")
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _git(*args: str, cwd: Path) -> str:
    env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.com", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@example.com", GIT_CONFIG_NOSYSTEM="1", HOME=str(cwd))
    result = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, check=True)
    return result.stdout.decode().strip()


@pytest.fixture(scope="module")
def git_repo(http_root, tmp_path_factory):
    """A repository served over git's dumb http protocol: branch main (two commits), a tag v1 on the first,
    an annotated tag release on the second."""
    root, base = http_root
    work = tmp_path_factory.mktemp("gitwork")
    _git("init", "-q", "-b", "main", cwd=work)
    (work / "Dockerfile").write_text("FROM scratch\nCOPY . /src/\n")
    (work / "app").mkdir()
    (work / "app" / "Dockerfile").write_text("FROM scratch\nCOPY . /only-app/\n")
    (work / "app" / "main.txt").write_text("version 1\n")
    (work / ".dockerignore").write_text("app/main.txt\n")
    _git("add", "-A", cwd=work)
    _git("commit", "-q", "-m", "one", cwd=work)
    _git("tag", "v1", cwd=work)
    first = _git("rev-parse", "HEAD", cwd=work)
    (work / "app" / "main.txt").write_text("version 2\n")
    _git("commit", "-q", "-am", "two", cwd=work)
    _git("tag", "-a", "-m", "annotated", "release", cwd=work)
    bare = root / "repo.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(bare)], check=True, capture_output=True)
    _git("update-server-info", cwd=bare)
    return f"{base}/repo.git", first


def test_build_from_a_git_repository(tmp_path, store, git_repo):
    url, first = git_repo
    built(build(store, url, "-t", "git-ctx:1"))            # type: ignore[arg-type]
    files = files_of(store, "git-ctx:1", tmp_path)
    assert files["src/app/main.txt"] == sha("version 2\n")
    assert not [p for p in files if p.startswith("src/.git")]      # the .git dir is not part of the context
    # #ref:subdir — a tag, and the context is the subdirectory (its Dockerfile)
    built(build(store, f"{url}#v1:app", "-t", "git-ctx:2"))         # type: ignore[arg-type]
    assert files_of(store, "git-ctx:2", tmp_path) == {"only-app": "dir", "only-app/Dockerfile": sha(
        "FROM scratch\nCOPY . /only-app/\n"), "only-app/main.txt": sha("version 1\n")}
    built(build(store, f"{url}#{first}", "-t", "git-ctx:3", "-f", "app/Dockerfile"))    # type: ignore[arg-type]
    assert files_of(store, "git-ctx:3", tmp_path)["only-app/app/main.txt"] == sha("version 1\n")
    built(build(store, f"{url}?tag=release&subdir=app", "-t", "git-ctx:4"))              # type: ignore[arg-type]
    assert files_of(store, "git-ctx:4", tmp_path)["only-app/main.txt"] == sha("version 2\n")
    out = fails(build(store, f"{url}#no-such-branch"))                                   # type: ignore[arg-type]
    assert f"failed to fetch remote {url}" in out
    assert store_temp_entries(store) == []


def test_build_from_http_urls(tmp_path, store, http_root):
    root, base = http_root
    (root / "ctx.tar.gz").write_bytes(gzip.compress(_tar({"Dockerfile": "FROM scratch\nCOPY . /web/\n",
                                                          "index.html": "<h1>hi</h1>\n"})))
    (root / "Dockerfile.txt").write_text("FROM scratch\nCOPY . /only/\n")
    built(build(store, f"{base}/ctx.tar.gz", "-t", "url-ctx:1"))                        # type: ignore[arg-type]
    assert files_of(store, "url-ctx:1", tmp_path)["web/index.html"] == sha("<h1>hi</h1>\n")
    # not an archive: the URL is the Dockerfile, in a context holding just that file, named "context"
    built(build(store, f"{base}/Dockerfile.txt", "-t", "url-ctx:2"))                    # type: ignore[arg-type]
    assert files_of(store, "url-ctx:2", tmp_path) == {"only": "dir", "only/context": sha(
        "FROM scratch\nCOPY . /only/\n")}
    out = fails(build(store, f"{base}/missing.tar"))                                    # type: ignore[arg-type]
    assert f"failed to download {base}/missing.tar: invalid response status 404" in out
    # -f as a URL with a local directory
    ctx = write_context(tmp_path / "ctx", "unused\n", {"x.txt": "x"})
    (root / "remote.Dockerfile").write_text("FROM scratch\nCOPY x.txt /\n")
    built(build(store, ctx, "-t", "url-f:1", "-f", f"{base}/remote.Dockerfile"))
    assert files_of(store, "url-f:1", tmp_path) == {"x.txt": sha("x")}
    assert store_temp_entries(store) == []


def test_named_build_contexts(tmp_path, store, git_repo, http_root):
    root, base = http_root
    url, _ = git_repo
    (root / "blob.bin").write_bytes(b"\x00binary")
    extra = write_context(tmp_path / "extra", "unused\n", {"lib/a.txt": "a", "lib/b.tmp": "b",
                                                           ".dockerignore": "**/*.tmp\n"})
    ctx = write_context(tmp_path / "ctx", (
        "FROM scratch\n"
        "COPY --from=extra lib /lib/\n"
        "COPY --from=repo app/main.txt /from-git.txt\n"
        "COPY --from=download context /downloaded.bin\n"), {})
    built(build(store, ctx, "-t", "named:1", "--build-context", f"extra={extra}",
                "--build-context", f"repo={url}", "--build-context", f"download={base}/blob.bin"))
    assert files_of(store, "named:1", tmp_path) == {
        "lib": "dir", "lib/a.txt": sha("a"), "from-git.txt": sha("version 2\n"), "downloaded.bin": sha(b"\x00binary")}
    out = fails(build(store, ctx, "--build-context", "extra=/no/such/dir"))
    assert "failed to get build context extra: stat /no/such/dir: no such file or directory" in out
    assert store_temp_entries(store) == []


# ----------------------------------------------------------------------------------------------
# 20,000 files: one stat pass, no file read


_IN_ACCESS, _IN_OPEN, _IN_Q_OVERFLOW, _IN_ISDIR, _IN_NONBLOCK = 0x1, 0x20, 0x4000, 0x40000000, 0o4000


class FileOpens:
    """inotify on a tree's directories: which files were opened or read (the kernel tells, no strace)."""

    def __init__(self, root: Path):
        self.libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        self.fd = self.libc.inotify_init1(_IN_NONBLOCK)
        assert self.fd >= 0, os.strerror(ctypes.get_errno())
        self.dirs: dict[int, str] = {}
        for path in [root, *(p for p in root.rglob("*") if p.is_dir())]:
            wd = self.libc.inotify_add_watch(self.fd, str(path).encode(), _IN_OPEN | _IN_ACCESS)
            assert wd >= 0, os.strerror(ctypes.get_errno())
            self.dirs[wd] = str(path)

    def files_touched(self) -> list[str]:
        touched = []
        while True:
            try:
                data = os.read(self.fd, 1 << 20)
            except BlockingIOError:
                break
            offset = 0
            while offset < len(data):
                wd, mask, _cookie, length = struct.unpack_from("iIII", data, offset)
                name = data[offset + 16: offset + 16 + length].rstrip(b"\0").decode()
                offset += 16 + length
                if mask & _IN_Q_OVERFLOW:
                    touched.append("<too many events: files were opened>")
                elif name and not mask & _IN_ISDIR:
                    touched.append(os.path.join(self.dirs.get(wd, "?"), name))
        return touched

    def close(self):
        os.close(self.fd)


def test_an_unchanged_20000_file_context_is_not_read_again(tmp_path, store):
    ctx = write_context(tmp_path / "ctx", "FROM scratch\nCOPY . /data/\n", {".dockerignore": "skipped\n"})
    for d in range(20):
        sub = ctx / f"d{d:02}"
        sub.mkdir()
        for f in range(1000):
            (sub / f"f{f:04}.txt").write_text(f"{d}/{f}\n")
    (ctx / "skipped").mkdir()
    (ctx / "skipped" / "big.bin").write_bytes(b"x" * 1000)
    first, progress = built(build(store, ctx, "-t", "many:1"))
    assert step_states(progress)["COPY . /data/"] == "DONE"
    watch = FileOpens(ctx)
    try:
        again, progress = built(build(store, ctx, "-t", "many:1", env={"PYBUILD_NO_MEMO": "1"}))
        assert again == first and step_states(progress)["COPY . /data/"] == "CACHED"
        touched = watch.files_touched()
    finally:
        watch.close()
    # the Dockerfile and .dockerignore are read; no file of the context is opened
    assert sorted(os.path.basename(p) for p in set(touched)) == [".dockerignore", "Dockerfile"], touched[:10]


# ----------------------------------------------------------------------------------------------
# interrupted builds


def _start_from_stdin(root: Path, data: bytes) -> subprocess.Popen:
    import sys

    from helpers import REPO

    env = dict(os.environ)
    env.pop("PYBUILD_DEBUG", None)
    proc = subprocess.Popen([sys.executable, "-m", "builder.cli", "--root", str(root), "build", "--progress",
                             "plain", "-"], cwd=REPO, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)
    proc.stdin.write(data)
    proc.stdin.close()
    proc.stdin = None                    # all written: communicate() has nothing more to send
    return proc


@pytest.mark.parametrize("signal_name", ["SIGINT", "SIGKILL"])
def test_an_interrupted_build_leaves_no_context_behind(tmp_path, store, signal_name):
    import signal

    data = _tar({"Dockerfile": "FROM busybox\nCOPY . /ctx/\nRUN echo context-is-open; sleep 30\n", "f.txt": "f"})
    proc = _start_from_stdin(store, data)
    try:
        _wait_for(proc, b"context-is-open", timeout=60)
        assert [n for n in store_temp_entries(store) if n.startswith("context-")], "the tar is unpacked in tmp/"
        os.killpg(proc.pid, getattr(signal, signal_name))
        proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    if signal_name == "SIGINT":
        assert proc.returncode == 1 and store_temp_entries(store) == []
    else:
        ok(pb(store, "images"))          # the next command that opens the store sweeps what a killed one left
        assert store_temp_entries(store) == []
