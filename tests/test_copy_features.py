"""COPY/ADD features newer than docker 20.10's BuildKit 0.8, or that need a server: real builds.

The goldens (``test_copy_goldens.py``) cover what BuildKit 0.8 can show. What it cannot is tested
here against BuildKit's documented behaviour and its source (convert_copy.go, fsutil's copier):

* ``--chmod`` symbolic (Dockerfile 1.14), ``--exclude`` (1.19), ``--parents`` (1.20), ``--link``;
* ``COPY --from`` a stage (owners kept, symlinks resolved inside the stage's rootfs);
* ``ADD`` of an http URL (local server thread: name from the URL, mode 0600, mtime from
  Last-Modified, ``--checksum``, never extracted), of a git repository (a local repo served over
  http with the dumb protocol after ``git update-server-info``; ``--keep-git-dir``, ``#ref:subdir``);
* cache keys: content and metadata, not mtimes; files hidden by .dockerignore are in no key.
"""

from __future__ import annotations

import hashlib
import http.server
import io
import os
import subprocess
import tarfile
import threading

import pytest
from test_build_engine import (
    build,
    built,
    image_tree,
    layer_text,
    new_store,
    saved_images,
    step_states,
    write_context,
)


@pytest.fixture(scope="module")
def store(tmp_path_factory, busybox_tar):
    return new_store(tmp_path_factory.mktemp("copy-features") / "root", busybox_tar)


def _image(store, context, tmp_path, *args) -> dict:
    _, progress = built(build(store, context, "-t", "feat:latest", *args))
    image = saved_images(store, ["feat:latest"], tmp_path / "img.tar")["feat:latest"]
    image["tree"] = image_tree(image)
    image["progress"] = progress
    return image


def fails(result) -> str:
    """The output of a build that must fail as pybuild reports errors (exit 1, no traceback)."""
    stderr = result.stderr.decode(errors="replace")
    assert result.returncode == 1, stderr
    assert "Traceback" not in stderr, stderr
    assert "\nerror: " in "\n" + stderr, stderr
    return stderr


def states(result) -> set:
    """CACHED/DONE of every step; a rebuild the no-op memo answered counts as all CACHED."""
    progress = built(result)[1]
    if "CACHED (nothing changed since the last identical build)" in progress:
        return {"CACHED"}
    return set(step_states(progress).values())


def _e(tree, path) -> tuple:
    e = tree[path]
    return (e["type"], e["mode"], e["uid"], e["gid"])


def _text(image, path: str) -> str:
    return layer_text(image, path)


# ----------------------------------------------------------------------------------------------
# --chmod symbolic, --exclude, --parents, --link


def test_chmod_symbolic(tmp_path, store):
    """Dockerfile 1.14: chmod(1) clauses with a umask of 0; X only for dirs and executables."""
    ctx = write_context(tmp_path / "ctx", "FROM busybox\n"
                        "COPY --chmod=u+x,g-w run.sh /s/run.sh\n"
                        "COPY --chmod=a=rX dir /s/dir/\n"
                        "COPY --chmod=+x data.txt /s/plus-x\n"
                        "COPY --chmod=go=u-w data.txt /s/go-copy\n",
                        {"run.sh": "#!/bin/sh\n", "data.txt": "d\n", "dir/exec": "e\n", "dir/plain": "p\n"})
    os.chmod(ctx / "run.sh", 0o664)
    os.chmod(ctx / "data.txt", 0o640)
    os.chmod(ctx / "dir" / "exec", 0o750)
    os.chmod(ctx / "dir" / "plain", 0o600)
    tree = _image(store, ctx, tmp_path)["tree"]
    assert _e(tree, "s/run.sh")[1] == "0744"
    assert _e(tree, "s/dir/exec")[1] == "0555"
    assert _e(tree, "s/dir/plain")[1] == "0444"
    assert _e(tree, "s/plus-x")[1] == "0751"
    assert _e(tree, "s/go-copy")[1] == "0644"
    # a bad mode is BuildKit's error, at the line
    ctx = write_context(tmp_path / "bad", "FROM busybox\nCOPY --chmod=u+q data.txt /x\n", {"data.txt": "d\n"})
    assert "invalid" in fails(build(store, ctx)).lower()


def test_exclude_and_parents(tmp_path, store):
    """``--exclude`` leaves matching paths out (Docker patterns: ``**``, parent matches); ``--parents``
    keeps the source's path below the destination, from the context root or a ``/./`` pivot."""
    files = {"src/a/keep.go": "k\n", "src/a/skip_test.go": "t\n", "src/b/deep/x.go": "x\n",
             "src/b/deep/y_test.go": "y\n", "src/node_modules/m.js": "m\n", "docs/readme.md": "r\n"}
    ctx = write_context(tmp_path / "ctx", "FROM busybox\n"
                        "COPY --exclude=**/*_test.go --exclude=node_modules src /ex/\n"
                        "COPY --parents src/a/keep.go docs/readme.md /par/\n"
                        "COPY --parents src/./b/deep/x.go /pivot/\n"
                        "COPY --parents src/*/keep.go /globpar/\n", files)
    tree = _image(store, ctx, tmp_path)["tree"]
    assert sorted(p for p in tree if p.startswith("ex/")) == ["ex/a", "ex/a/keep.go", "ex/b", "ex/b/deep",
                                                              "ex/b/deep/x.go"]
    assert sorted(p for p in tree if p.startswith("par/")) == ["par/docs", "par/docs/readme.md", "par/src",
                                                               "par/src/a", "par/src/a/keep.go"]
    assert sorted(p for p in tree if p.startswith("pivot/")) == ["pivot/b", "pivot/b/deep", "pivot/b/deep/x.go"]
    assert sorted(p for p in tree if p.startswith("globpar/")) == ["globpar/src", "globpar/src/a",
                                                                   "globpar/src/a/keep.go"]
    ctx = write_context(tmp_path / "missing", "FROM busybox\nCOPY --parents src/nope.go /x/\n", {"src/a": "a\n"})
    assert 'failed to compute cache key: "/src/nope.go": not found' in fails(build(store, ctx))


def test_link_builds_an_independent_layer(tmp_path, store):
    """``--link``: the copy goes into an empty tree merged on top: parent directories of the
    destination are BuildKit's defaults (0755 root) whatever the image had (here /tmp, 1777), and
    the image's symlinks are not followed (the layer replaces the link by a directory)."""
    ctx = write_context(tmp_path / "ctx", "FROM busybox\n"
                        "RUN mkdir -p /real && ln -s /real /via-link\n"
                        "COPY --link a.txt /tmp/sub/a.txt\n"
                        "COPY --link a.txt /via-link/a.txt\n"
                        "COPY a.txt /plain-tmp/a.txt\n", {"a.txt": "a\n"})
    image = _image(store, ctx, tmp_path)
    layers = [layer for layer in image["layers"]]
    from test_build_engine import layer_tree

    link_layer = {e["path"]: e for e in layer_tree(layers[-3])}
    assert (link_layer["tmp"]["mode"], link_layer["tmp"]["uid"]) == ("0755", 0)
    assert set(link_layer) == {"tmp", "tmp/sub", "tmp/sub/a.txt"}
    second = {e["path"]: e for e in layer_tree(layers[-2])}
    assert second["via-link"]["type"] == "dir" and "via-link/a.txt" in second


def test_link_layer_is_reused_when_an_earlier_step_changes(tmp_path, store):
    """The point of ``--link``: its layer does not depend on the steps before it, so changing an
    earlier RUN rebuilds that RUN but takes the same --link layer from the cache (and the steps after
    it run again on the new parent); without --link the COPY runs again."""
    files = {"big.txt": "payload\n" * 1000}
    dockerfile = "FROM busybox\nRUN echo {v} > /v.txt\nCOPY {link}big.txt /data/\nRUN cat /v.txt /data/big.txt | wc -l > /n\n"
    for n, link in enumerate(("--link ", "")):
        ctx = write_context(tmp_path / f"ctx{n}", dockerfile.format(v=f"{n}-1", link=link), files)
        first = built(build(store, ctx, "-t", "link-reuse:1"))[0]
        (ctx / "Dockerfile").write_text(dockerfile.format(v=f"{n}-2", link=link))
        second, progress = built(build(store, ctx, "-t", "link-reuse:2"))
        states = step_states(progress)
        assert states[f"RUN echo {n}-2 > /v.txt"] == "DONE"
        assert states[f"COPY {link}big.txt /data/"] == ("CACHED" if link else "DONE"), progress
        assert states["RUN cat /v.txt /data/big.txt | wc -l > /n"] == "DONE"
        assert first != second
        image = saved_images(store, ["link-reuse:1", "link-reuse:2"], tmp_path / f"l{len(link)}.tar")
        assert _text(image["link-reuse:2"], "n").strip() == "1001"
        if link:   # the very same layer under two different parents
            assert image["link-reuse:1"]["layers"][-2] == image["link-reuse:2"]["layers"][-2]


def test_copy_from_stage_keeps_owners_and_resolves_links_inside(tmp_path, store):
    """COPY --from a stage: owners kept (only the context's are reset), an absolute symlink named as
    the source is resolved inside the stage's rootfs, never on the host."""
    ctx = write_context(tmp_path / "ctx", "FROM busybox AS build\n"
                        "RUN mkdir /out && echo made > /out/f && chown 1234:5678 /out/f "
                        "&& ln -s /out/f /abs-link && ln -s /etc/hostname /host-link && echo mine > /etc/hostname\n"
                        "FROM busybox\n"
                        "COPY --from=build /out /copied/\n"
                        "COPY --from=build /abs-link /followed\n"
                        "COPY --from=build /host-link /hostname-of-stage\n"
                        "COPY --from=0 /out/f /by-index\n")
    image = _image(store, ctx, tmp_path)
    tree = image["tree"]
    assert _e(tree, "copied/f")[2:] == (1234, 5678)
    assert _text(image, "followed") == "made\n"
    assert _text(image, "hostname-of-stage") == "mine\n"
    assert _e(tree, "by-index")[2:] == (1234, 5678)


# ----------------------------------------------------------------------------------------------
# ADD: http


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves a directory; Last-Modified comes from the files' mtimes."""

    def log_message(self, *args):
        pass


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    handler = lambda *a, **k: _Handler(*a, directory=str(root), **k)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def _tgz(files: dict) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_add_url(tmp_path, store, server):
    root, url = server
    (root / "files").mkdir()
    (root / "files" / "hello.txt").write_bytes(b"hello over http\n")
    os.utime(root / "files" / "hello.txt", (1_600_000_000, 1_600_000_000))
    (root / "pkg.tgz").write_bytes(_tgz({"inside.txt": b"i\n"}))
    digest = "sha256:" + hashlib.sha256(b"hello over http\n").hexdigest()
    ctx = write_context(tmp_path / "ctx", "FROM busybox\n"
                        f"ADD {url}/files/hello.txt /web/\n"
                        f"ADD --checksum={digest} {url}/files/hello.txt /checked.txt\n"
                        f"ADD {url}/pkg.tgz /pkg/\n"
                        f"ADD --chown=1000:1000 {url}/files/hello.txt /owned\n"
                        f"ADD --unpack=true {url}/pkg.tgz /unpacked/\n"
                        "COPY <<EOF /heredoc/\nfrom a heredoc\nEOF\n")
    image = _image(store, ctx, tmp_path)
    tree = image["tree"]
    assert _e(tree, "web/hello.txt") == ("file", "0600", 0, 0)
    assert _text(image, "web/hello.txt") == "hello over http\n"
    assert _e(tree, "checked.txt") == ("file", "0600", 0, 0)
    assert _e(tree, "pkg/pkg.tgz")[0] == "file"            # a remote archive is not extracted
    assert _e(tree, "owned") == ("file", "0600", 1000, 1000)
    assert _text(image, "unpacked/inside.txt") == "i\n"          # --unpack=true extracts it
    assert _e(tree, "heredoc/EOF") == ("file", "0644", 0, 0)
    assert _text(image, "heredoc/EOF") == "from a heredoc\n"
    for data in image["layers"][1:2]:
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            assert tar.getmember("web/hello.txt").mtime == 1_600_000_000      # Last-Modified

    assert states(build(store, ctx, "-t", "feat:latest")) == {"CACHED"}
    wrong = "sha256:" + "0" * 64
    bad = write_context(tmp_path / "bad", f"FROM busybox\nADD --checksum={wrong} {url}/files/hello.txt /x\n")
    err = fails(build(store, bad))
    assert f"digest mismatch for {url}/files/hello.txt" in err and f"(expected: {wrong})" in err
    missing = write_context(tmp_path / "missing", f"FROM busybox\nADD {url}/nope.txt /x\n")
    assert "invalid response status 404" in fails(build(store, missing))
    copy_url = write_context(tmp_path / "copyurl", f"FROM busybox\nCOPY {url}/files/hello.txt /x\n")
    assert "source can't be a URL for COPY" in fails(build(store, copy_url))


def test_add_url_new_content_rebuilds(tmp_path, store, server):
    root, url = server
    (root / "v.txt").write_bytes(b"one\n")
    ctx = write_context(tmp_path / "ctx", f"FROM busybox\nADD {url}/v.txt /v.txt\nRUN cat /v.txt > /copy\n")
    built(build(store, ctx))
    (root / "v.txt").write_bytes(b"two\n")
    assert states(build(store, ctx)) == {"DONE"}
    (root / "v.txt").write_bytes(b"one\n")
    assert states(build(store, ctx)) == {"CACHED"}


# ----------------------------------------------------------------------------------------------
# ADD: git


def _git(*args, cwd):
    env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.invalid", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@example.invalid", GIT_CONFIG_NOSYSTEM="1", HOME=str(cwd))
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout


def test_add_git(tmp_path, store, server):
    root, url = server
    work = tmp_path / "work"
    work.mkdir()
    _git("init", "-q", "-b", "main", cwd=work)
    (work / "README").write_text("readme v1\n")
    (work / "sub").mkdir()
    (work / "sub" / "tool.sh").write_text("#!/bin/sh\n")
    os.chmod(work / "sub" / "tool.sh", 0o755)
    _git("add", "-A", cwd=work)
    _git("commit", "-q", "-m", "one", cwd=work)
    _git("tag", "v1", cwd=work)
    (work / "README").write_text("readme v2\n")
    _git("commit", "-q", "-am", "two", cwd=work)
    _git("clone", "-q", "--bare", str(work), str(root / "repo.git"), cwd=tmp_path)
    _git("update-server-info", cwd=root / "repo.git")
    ctx = write_context(tmp_path / "ctx", "FROM busybox\n"
                        f"ADD {url}/repo.git#v1 /v1/\n"
                        f"ADD {url}/repo.git /src/\n"
                        f"ADD {url}/repo.git#main:sub /sub-only/\n"
                        f"ADD --keep-git-dir=true {url}/repo.git#v1 /with-git/\n")
    image = _image(store, ctx, tmp_path)
    tree = image["tree"]
    assert _text(image, "src/README") == "readme v2\n"
    assert _text(image, "v1/README") == "readme v1\n"
    assert "src/.git" not in tree and "v1/.git" not in tree
    assert _e(tree, "sub-only/tool.sh") == ("file", "0755", 0, 0)
    assert "sub-only/README" not in tree
    assert _e(tree, "src/README") == ("file", "0644", 0, 0)
    assert "with-git/.git/HEAD" in tree
    # a new commit is a new key
    assert states(build(store, ctx, "-t", "feat:latest")) == {"CACHED"}
    (work / "README").write_text("readme v3\n")
    _git("commit", "-q", "-am", "three", cwd=work)
    _git("push", "-q", str(root / "repo.git"), "main", cwd=work)
    _git("update-server-info", cwd=root / "repo.git")
    found = step_states(built(build(store, ctx, "-t", "feat:latest"))[1])
    assert found[f"ADD {url}/repo.git /src/"] == "DONE"
    assert found[f"ADD {url}/repo.git#v1 /v1/"] == "CACHED"
    assert "source can't be a git ref for COPY" in fails(build(store, write_context(
        tmp_path / "c", f"FROM busybox\nCOPY {url}/repo.git /x/\n")))


# ----------------------------------------------------------------------------------------------
# cache keys


def test_cache_key_is_content_and_metadata_not_mtime(tmp_path, store):
    ctx = write_context(tmp_path / "ctx", "FROM busybox\nCOPY dir /d/\n", {"dir/a": "a\n", "dir/sub/b": "b\n"})
    built(build(store, ctx))
    os.utime(ctx / "dir" / "sub" / "b", (5, 5))
    os.utime(ctx / "dir", (5, 5))
    assert states(build(store, ctx)) == {"CACHED"}
    os.chmod(ctx / "dir" / "a", 0o600)
    assert states(build(store, ctx)) == {"DONE"}
    os.symlink("a", ctx / "dir" / "new-link")
    assert states(build(store, ctx)) == {"DONE"}
    assert states(build(store, ctx)) == {"CACHED"}


def test_excluded_paths_are_not_in_the_key(tmp_path, store):
    ctx = write_context(tmp_path / "ctx", "FROM busybox\nCOPY --exclude=*.log . /app/\n",
                        {"main.c": "int main;\n", "debug.log": "1\n"})
    built(build(store, ctx))
    (ctx / "debug.log").write_text("2\n")
    assert states(build(store, ctx)) == {"CACHED"}


def test_symlink_loop_inside_a_copied_dir_is_copied_as_links(tmp_path, store):
    ctx = write_context(tmp_path / "ctx", "FROM busybox\nCOPY d /d/\n", {"d/f": "f\n"})
    os.symlink("loop-b", ctx / "d" / "loop-a")
    os.symlink("loop-a", ctx / "d" / "loop-b")
    tree = _image(store, ctx, tmp_path)["tree"]
    assert tree["d/loop-a"]["type"] == "symlink" and tree["d/loop-a"]["link"] == "loop-b"


def test_big_file_copy_reports_progress(tmp_path):
    """A big file goes through the kernel copy; the TRANSFER callback hears about all its bytes."""
    from builder.build.copyops import TRANSFER, copy_file

    src, dst = tmp_path / "big.bin", tmp_path / "copy.bin"
    src.write_bytes(os.urandom(1 << 20) * 40)
    heard = []
    token = TRANSFER.set(heard.append)
    try:
        copy_file(str(src), str(dst), 40 << 20, TRANSFER.get())
    finally:
        TRANSFER.reset(token)
    assert sum(heard) == 40 << 20
    assert dst.read_bytes() == src.read_bytes()


def test_directory_trees_copied_in_parallel_keep_hardlinks_and_attributes(tmp_path, store):
    """A source directory's subdirectories are written by several threads: hardlinks between two
    subdirectories stay one inode (a hardlink entry in the layer), every file and directory keeps its
    mode, and nothing is missing."""
    ctx = tmp_path / "ctx"
    for d in range(12):
        sub = ctx / "tree" / f"d{d:02d}"
        sub.mkdir(parents=True)
        for f in range(30):
            (sub / f"f{f:02d}").write_text(f"{d}-{f}\n")
        os.chmod(sub / "f00", 0o750)
        os.chmod(sub, 0o710)
    os.link(ctx / "tree" / "d00" / "f05", ctx / "tree" / "d11" / "linked")
    (ctx / "Dockerfile").write_text("FROM busybox\nCOPY tree/ /tree/\n")
    image = _image(store, ctx, tmp_path)
    tree = image["tree"]
    entries = [p for p, e in tree.items() if p.startswith("tree/") and e["type"] in ("file", "hardlink")]
    assert len(entries) == 12 * 30 + 1
    link = tree["tree/d11/linked"]
    assert link["type"] == "hardlink" and link["link"].endswith("tree/d00/f05"), link
    for d in range(12):
        assert _e(tree, f"tree/d{d:02d}")[:2] == ("dir", "0710")
        assert _e(tree, f"tree/d{d:02d}/f00")[:2] == ("file", "0750")
    assert _text(image, "tree/d07/f29") == "7-29\n"
