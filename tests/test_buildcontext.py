"""Build contexts in process: what a location names, ``-f`` and the ignore file chosen for each kind,
stdin tars and Dockerfiles, --build-context values, and that temp dirs go away whatever happens."""

from __future__ import annotations

import io
import os
import tarfile

import pytest

from builder.buildcontext import ContextError, open_build_context, open_named_contexts, parse_named_context
from builder.buildcontext.archive import is_archive
from builder.buildcontext.ignore import IgnoreFileError
from builder.buildcontext.location import GitRef, classify, parse_git_ref
from builder.buildcontext.named import context_key


def make_tar(files: dict[str, str | bytes], *, fmt=tarfile.PAX_FORMAT) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        for name, content in files.items():
            data = content.encode() if isinstance(content, str) else content
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 1_600_000_000
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


# ----------------------------------------------------------------------------------------------
# locations


@pytest.mark.parametrize("location,expected", [
    ("https://github.com/moby/buildkit.git", GitRef("https://github.com/moby/buildkit.git")),
    ("https://github.com/moby/buildkit.git#v0.12:frontend/dockerfile",
     GitRef("https://github.com/moby/buildkit.git", "v0.12", "frontend/dockerfile")),
    ("https://host/repo.git#:sub/../dir/", GitRef("https://host/repo.git", "", "dir")),
    ("http://127.0.0.1:8080/r.git?branch=dev&subdir=app",
     GitRef("http://127.0.0.1:8080/r.git", "refs/heads/dev", "app")),
    ("https://host/r.git?tag=v1&keep-git-dir=1", GitRef("https://host/r.git", "refs/tags/v1", keep_git_dir=True)),
    ("git://host/r#main", GitRef("git://host/r", "main")),
    ("ssh://git@host/r", GitRef("ssh://git@host/r")),
    ("git@github.com:moby/buildkit.git#main:docs", GitRef("git@github.com:moby/buildkit.git", "main", "docs")),
    ("github.com/moby/buildkit", GitRef("https://github.com/moby/buildkit")),
    ("https://example.com/context.tar.gz", None),      # http without .git: a file to download
    ("file:///srv/repo.git", None),                     # not a protocol BuildKit's git source takes
    ("./repo.git", None),
    ("relative/dir", None),
])
def test_git_urls(location, expected):
    assert parse_git_ref(location) == expected


def test_classify(tmp_path):
    (tmp_path / "https:").mkdir()
    assert classify("-") == "stdin"
    assert classify(str(tmp_path)) == "dir"
    assert classify("https://h/r.git") == "git"
    assert classify("http://h/c.tar") == "url"
    with pytest.raises(ContextError, match=r'^unable to prepare context: path "nope" not found$'):
        classify("nope")


def test_archive_detection():
    assert is_archive(make_tar({"a": "x"})[:1024]) and is_archive(make_tar({"a": "x"}, fmt=tarfile.GNU_FORMAT))
    assert is_archive(b"\x1f\x8b\x08\x00rest") and is_archive(b"BZh91AY&SY") and is_archive(b"\xfd7zXZ\x00..")
    assert is_archive(b"\x28\xb5\x2f\xfd....")
    assert not is_archive(b"FROM scratch\nCOPY . /\n") and not is_archive(b"") and not is_archive(b"\0" * 1024)


# ----------------------------------------------------------------------------------------------
# directories, -f and the ignore file


def test_directory_defaults(tmp_path, monkeypatch):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM scratch\n")
    (ctx / ".dockerignore").write_text("*.log\n")
    with open_build_context(str(ctx)) as bc:
        assert (bc.kind, bc.root, bc.dockerfile, bc.dockerfile_name) == ("dir", str(ctx), b"FROM scratch\n",
                                                                         str(ctx / "Dockerfile"))
        assert bc.ignore.matches("x.log") and bc.ignore_file == str(ctx / ".dockerignore") and bc.local
    monkeypatch.chdir(tmp_path)                      # -f is relative to the current directory
    (tmp_path / "other.Dockerfile").write_text("FROM busybox\n")
    (tmp_path / "other.Dockerfile.dockerignore").write_text("*.txt\n")
    with open_build_context("ctx", "other.Dockerfile") as bc:
        assert bc.dockerfile == b"FROM busybox\n" and bc.dockerfile_name == "other.Dockerfile"
        assert bc.ignore.matches("a.txt") and not bc.ignore.matches("x.log")     # the specific file wins
        assert bc.ignore_file == "other.Dockerfile.dockerignore"


def test_lowercase_dockerfile_and_empty_ignore(tmp_path):
    (tmp_path / "dockerfile").write_text("FROM scratch\n")
    (tmp_path / ".dockerignore").write_text("# nothing\n\n")
    with open_build_context(str(tmp_path)) as bc:
        assert bc.dockerfile_name.endswith("/dockerfile") and bc.ignore is None


def test_missing_dockerfile(tmp_path):
    with pytest.raises(ContextError, match=r"^failed to read Dockerfile .*/Dockerfile: No such file or directory$"):
        with open_build_context(str(tmp_path)):
            pass


def test_dockerfile_on_stdin_with_a_directory(tmp_path):
    (tmp_path / ".dockerignore").write_text("secret\n")
    with open_build_context(str(tmp_path), "-", stdin=io.BytesIO(b"FROM scratch\n")) as bc:
        assert bc.dockerfile == b"FROM scratch\n" and bc.root == str(tmp_path) and bc.ignore.matches("secret")
    with pytest.raises(ContextError, match="can't use stdin for both build context and dockerfile"):
        with open_build_context("-", "-", stdin=io.BytesIO(b"")):
            pass


def test_bad_ignore_file_is_reported(tmp_path):
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    (tmp_path / ".dockerignore").write_text("ok\n!\n")
    with pytest.raises(IgnoreFileError, match=r'failed to parse .*\.dockerignore: illegal exclusion pattern: "!"'):
        with open_build_context(str(tmp_path)):
            pass


# ----------------------------------------------------------------------------------------------
# stdin


def test_stdin_tar_is_unpacked_and_removed(tmp_path):
    data = make_tar({"Dockerfile": "FROM scratch\nCOPY . /\n", "sub/a.txt": "a", ".dockerignore": "sub\n"})
    with open_build_context("-", stdin=io.BytesIO(data), tmp_dir=str(tmp_path / "tmp")) as bc:
        root = bc.root
        assert bc.kind == "stdin-tar" and bc.dockerfile_name == "Dockerfile"
        assert (open(os.path.join(root, "sub/a.txt")).read()) == "a"
        assert bc.ignore is None          # BuildKit sends a remote (tar) context whole
    assert not os.path.exists(root) and os.listdir(tmp_path / "tmp") == []


def test_stdin_tar_with_f_and_errors(tmp_path):
    data = make_tar({"docker/App.Dockerfile": "FROM scratch\n"})
    with open_build_context("-", "docker/App.Dockerfile", stdin=io.BytesIO(data), tmp_dir=str(tmp_path)) as bc:
        assert bc.dockerfile == b"FROM scratch\n" and bc.dockerfile_name == "docker/App.Dockerfile"
    with pytest.raises(ContextError, match="failed to read Dockerfile Dockerfile: No such file or directory"):
        with open_build_context("-", stdin=io.BytesIO(data), tmp_dir=str(tmp_path)):
            pass
    escape = make_tar({"../evil": "x", "Dockerfile": "FROM scratch\n"})
    with pytest.raises(ContextError, match=r"cannot unpack the context archive on stdin: .*'\.\.'"):
        with open_build_context("-", stdin=io.BytesIO(escape), tmp_dir=str(tmp_path)):
            pass
    assert not (tmp_path.parent / "evil").exists() and os.listdir(tmp_path) == []


def test_stdin_dockerfile_has_no_context():
    with open_build_context("-", stdin=io.BytesIO(b"FROM scratch\nLABEL a=b\n")) as bc:
        assert (bc.kind, bc.root, bc.dockerfile) == ("stdin-dockerfile", None, b"FROM scratch\nLABEL a=b\n")
    with pytest.raises(ContextError, match="ambiguous Dockerfile source"):
        with open_build_context("-", "Dockerfile", stdin=io.BytesIO(b"FROM scratch\n")):
            pass
    with pytest.raises(ContextError, match="stdin is empty"):
        with open_build_context("-", stdin=io.BytesIO(b"")):
            pass


def test_temp_dir_removed_when_the_build_fails(tmp_path):
    data = make_tar({"Dockerfile": "FROM scratch\n", "ro/file": "x"})
    with pytest.raises(RuntimeError):
        with open_build_context("-", stdin=io.BytesIO(data), tmp_dir=str(tmp_path)) as bc:
            os.chmod(os.path.join(bc.root, "ro"), 0o500)        # even a read-only directory inside
            raise RuntimeError("the build failed")
    assert os.listdir(tmp_path) == []


# ----------------------------------------------------------------------------------------------
# --build-context


def test_named_context_values(tmp_path):
    assert parse_named_context(f"src={tmp_path}").kind == "dir"
    assert parse_named_context("base=docker-image://busybox:1.36") == \
        type(parse_named_context("x=docker-image://a"))("base", "image", "busybox:1.36")
    assert parse_named_context("docker.io/library/alpine:latest=docker-image://busybox").name == "alpine"
    assert parse_named_context("repo=https://h/r.git#main").kind == "git"
    assert parse_named_context("file=https://h/x.tar.gz").kind == "url"
    assert context_key("Ghcr.io/a/b:latest".lower()) == "ghcr.io/a/b"
    for bad, message in [("noequals", "invalid context value: noequals, expected key=value"),
                         ("x=/does/not/exist", "failed to get build context x: stat /does/not/exist: "
                                               "no such file or directory"),
                         ("UPPER=/tmp", "invalid context name 'UPPER'"),
                         ("x=oci-layout://dir", "oci-layout contexts are not supported")]:
        with pytest.raises(ContextError) as info:
            parse_named_context(bad)
        assert message in str(info.value)


def test_open_named_contexts(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / ".dockerignore").write_text("*.tmp\n")
    named = {n.name: n for n in [parse_named_context(f"d={tmp_path / 'd'}"),
                                 parse_named_context("img=docker-image://busybox")]}
    with open_named_contexts(named, str(tmp_path / "tmp")) as opened:
        kind, root, ignore = opened["d"]
        assert (kind, root) == ("dir", str(tmp_path / "d")) and ignore.matches("x.tmp")
        assert opened["img"] == ("image", "busybox")
