"""Source trees COPY reads from: a host directory (with .dockerignore) and merged overlay layers.

Real directories, real overlay whiteouts (char 0/0) and opaque xattrs; a real overlay mount checks
that ``LayeredTree`` shows what the kernel shows.
"""

from __future__ import annotations

import os
import subprocess

import pytest

from builder.build.copystep import PathPatterns
from builder.build.gomatch import BadPattern, match
from builder.build.sources import DirectoryTree, LayeredTree, TreeError, exists, resolve


def _write(path, data=b"x"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _whiteout(path):
    os.mknod(path, 0o020000, os.makedev(0, 0))


def _layers(tmp_path):
    """bottom: a/{1,2,d/x}, b, c/old ; middle: a/2 whited out, c opaque with c/new ; top: b a dir, e."""
    bottom, middle, top = tmp_path / "bottom", tmp_path / "middle", tmp_path / "top"
    _write(bottom / "a" / "1", b"one")
    _write(bottom / "a" / "2", b"two")
    _write(bottom / "a" / "d" / "x", b"x")
    _write(bottom / "b", b"file b")
    _write(bottom / "c" / "old", b"old")
    (middle / "a").mkdir(parents=True)
    _whiteout(middle / "a" / "2")
    _write(middle / "c" / "new", b"new")
    os.setxattr(middle / "c", "trusted.overlay.opaque", b"y")
    _write(top / "b" / "inside", b"b is a dir now")
    _write(top / "e", b"e")
    os.symlink("/a/1", top / "abs-link")
    os.symlink("../../a", top / "rel-link")
    os.symlink("loop2", top / "loop1")
    os.symlink("loop1", top / "loop2")
    return [str(top), str(middle), str(bottom)]


def test_layered_tree_merges_like_overlayfs(tmp_path):
    tree = LayeredTree(_layers(tmp_path), description="stage 'x'")
    assert tree.listdir("") == ["a", "abs-link", "b", "c", "e", "loop1", "loop2", "rel-link"]
    assert tree.listdir("a") == ["1", "d"]            # 2 is whited out
    assert not exists(tree, "a/2")
    assert tree.listdir("c") == ["new"]               # opaque: old is hidden
    assert not exists(tree, "c/old")
    assert tree.listdir("b") == ["inside"]            # a dir over a file: nothing merged below
    with open(tree.host_path("a/1"), "rb") as fh:
        assert fh.read() == b"one"
    assert tree.readlink("abs-link") == "/a/1"
    assert tree.lstat("a/d/x").st_size == 1


def test_layered_tree_matches_a_real_overlay_mount(tmp_path):
    lowers = _layers(tmp_path)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o", "lowerdir=" + ":".join(lowers), str(mnt)], check=True)
    try:
        tree = LayeredTree(lowers, description="x")
        for dirpath, dirnames, filenames in os.walk(mnt):
            rel = os.path.relpath(dirpath, mnt)
            rel = "" if rel == "." else rel
            assert tree.listdir(rel) == sorted(dirnames + filenames), rel
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


def test_resolve_stays_inside_the_tree(tmp_path):
    tree = LayeredTree(_layers(tmp_path), description="stage 'x'")
    assert resolve(tree, "abs-link") == "a/1"
    assert resolve(tree, "rel-link/d/x") == "a/d/x"      # ../../ stops at the root
    assert resolve(tree, "abs-link", follow_final=False) == "abs-link"
    assert resolve(tree, "missing/../e") == "e"
    with pytest.raises(TreeError, match="too many links"):
        resolve(tree, "loop1")


def test_directory_tree_hides_ignored_paths(tmp_path):
    root = tmp_path / "ctx"
    _write(root / "keep.txt")
    _write(root / ".env")
    _write(root / ".git" / "HEAD")
    _write(root / "logs" / "a.log")
    _write(root / "logs" / "important.log")
    ignore = PathPatterns([".env", ".git", "logs", "!logs/important.log"])
    tree = DirectoryTree(str(root), description="build context", ignore=ignore)
    assert tree.listdir("") == ["keep.txt", "logs"]
    assert tree.listdir("logs") == ["important.log"]
    assert not exists(tree, ".env") and not exists(tree, ".git/HEAD") and not exists(tree, "logs/a.log")
    assert exists(tree, "logs/important.log")
    # owners of a context are reset (docker's client sends 0:0)
    os.chown(root / "keep.txt", 1000, 1000)
    assert tree.owner(tree.lstat("keep.txt")) == (0, 0)


def test_directory_tree_symlink_out_of_the_context_stays_in(tmp_path):
    root = tmp_path / "ctx"
    _write(root / "etc" / "passwd", b"mine")
    os.symlink("/etc/passwd", root / "link")
    os.symlink("../../../../etc/passwd", root / "climb")
    tree = DirectoryTree(str(root), description="build context")
    assert resolve(tree, "link") == "etc/passwd"
    assert resolve(tree, "climb") == "etc/passwd"


@pytest.mark.parametrize("pattern,name,expected", [
    ("*.txt", "a.txt", True), ("*.txt", ".hidden.txt", True), ("*", "a/b", False),
    ("a?c", "abc", True), ("[^a]bc", "xbc", True), ("[^a]bc", "abc", False), ("[!a]bc", "!bc", True),
    ("[a-c]x", "bx", True), ("\\*x", "*x", True), ("\\*x", "ax", False), ("*/b*", "dir/bee", True),
])
def test_go_filepath_match(pattern, name, expected):
    assert match(pattern, name) is expected


def test_go_filepath_match_bad_pattern():
    with pytest.raises(BadPattern):
        match("[a-", "a")


def test_ignored_files_never_reach_a_cache_key(tmp_path):
    """A file .dockerignore hides (``.env``, ``.git``) changes no COPY key and is never even read."""
    from types import SimpleNamespace

    from builder.build.context import StatCache, source_digest

    root = tmp_path / "ctx"
    _write(root / "app.py", b"print(1)\n")
    _write(root / ".env", b"SECRET=1\n")
    _write(root / ".git" / "HEAD", b"ref: refs/heads/main\n")
    tree = DirectoryTree(str(root), description="build context", ignore=PathPatterns([".env", ".git"]))
    copy_all = SimpleNamespace(sources=(".",), contents=(), excludes=(), from_="", parents=False)

    def key():
        reads = []
        digest = source_digest(copy_all, tree_for=lambda name: tree, cache=StatCache(None), reads=reads)
        return digest, reads

    first, reads = key()
    assert not any(".env" in r[0] or ".git" in r[0] for r in reads)
    (root / ".env").write_bytes(b"SECRET=2\n")
    (root / ".git" / "HEAD").write_bytes(b"changed\n")
    assert key()[0] == first
    (root / "app.py").write_bytes(b"print(2)\n")
    assert key()[0] != first
    # a moved context gives the same key (no absolute paths, no mtimes)
    import shutil

    moved = tmp_path / "elsewhere" / "ctx"
    shutil.copytree(root, moved)
    os.utime(moved / "app.py", (1, 1))
    tree2 = DirectoryTree(str(moved), description="build context", ignore=PathPatterns([".env", ".git"]))
    assert source_digest(copy_all, tree_for=lambda name: tree2, cache=StatCache(None)) == key()[0]


def test_layered_tree_keeps_owners_in_the_key(tmp_path):
    from types import SimpleNamespace

    from builder.build.context import StatCache, source_digest

    layer = tmp_path / "layer"
    _write(layer / "out" / "f", b"same\n")
    copy_out = SimpleNamespace(sources=("/out",), contents=(), excludes=(), from_="build", parents=False)
    tree = LayeredTree([str(layer)], description="stage 'build'")
    first = source_digest(copy_out, tree_for=lambda name: tree, cache=StatCache(None))
    os.chown(layer / "out" / "f", 1000, 1000)
    assert source_digest(copy_out, tree_for=lambda name: tree, cache=StatCache(None)) != first
