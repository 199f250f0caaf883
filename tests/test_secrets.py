"""RUN --mount=type=secret: readable inside the RUN (file and env forms), and nowhere afterwards.

The RUN writes a hash of the secret (never the value) into the image to prove it could read it. Then
every file under the store root is searched for the value -- layer blobs decompressed, tars opened
member by member, snapshots, records, the build-cache index, the stat cache -- and so are the image
saved with ``pybuild save``, the ``--metadata-file``, the progress output and the image's history.
"""

from __future__ import annotations

import base64
import bz2
import gzip
import hashlib
import io
import json
import lzma
import os
import subprocess
import tarfile
import uuid
from pathlib import Path

import pytest

from image_fixtures import fails, ok, pb
from test_build_engine import build, new_store, write_context

SECRET_DOCKERFILE = """\
FROM busybox
RUN --mount=type=secret,id=tok sha256sum /run/secrets/tok | cut -d' ' -f1 > /tok.sha; \\
    stat -c '%a %u %g' /run/secrets/tok > /tok.stat; ls /run/secrets > /secrets.list
RUN --mount=type=secret,id=envtok,env=ENVTOK printf '%s' "$ENVTOK" | sha256sum | cut -d' ' -f1 > /envtok.sha; \\
    test -e /run/secrets/envtok || echo no-file > /envtok.file
RUN --mount=type=secret,id=tok,target=custom,mode=0440,uid=1000,gid=1000 stat -c '%a %u %g' /custom > /custom.stat
RUN --mount=type=secret,id=absent test -e /run/secrets/absent || echo skipped > /absent.txt
"""


def _decoded(data: bytes, depth: int = 0):
    """``data`` and everything inside it: decompressed streams, tar members (recursively)."""
    yield data
    if depth > 4:
        return
    inner = None
    try:
        if data[:2] == b"\x1f\x8b":
            inner = gzip.decompress(data)
        elif data[:3] == b"BZh":
            inner = bz2.decompress(data)
        elif data[:6] == b"\xfd7zXZ\x00":
            inner = lzma.decompress(data)
        elif data[:4] == b"\x28\xb5\x2f\xfd":
            inner = subprocess.run(["zstd", "-dc"], input=data, capture_output=True, check=True).stdout
    except (OSError, EOFError, lzma.LZMAError, subprocess.CalledProcessError):
        inner = None
    if inner is not None:
        yield from _decoded(inner, depth + 1)
        return
    if len(data) >= 512 and data[257:262] == b"ustar":
        try:
            with tarfile.open(fileobj=io.BytesIO(data)) as tar:
                for member in tar:
                    yield member.name.encode()
                    yield member.linkname.encode()
                    yield json.dumps(member.pax_headers).encode()
                    if member.isfile():
                        yield from _decoded(tar.extractfile(member).read(), depth + 1)
        except tarfile.TarError:
            pass


def _forms(value: bytes) -> list[bytes]:
    return [value, base64.b64encode(value), value.hex().encode(), json.dumps(value.decode())[1:-1].encode()]


def find_secret(paths, value: bytes) -> list[str]:
    """Every file under ``paths`` (recursively) whose bytes, decompressed or unpacked, hold ``value``."""
    found = []
    forms = _forms(value)
    for top in paths:
        top = Path(top)
        files = [top] if top.is_file() else [p for p in top.rglob("*") if p.is_file() and not p.is_symlink()]
        for path in files:
            try:
                data = path.read_bytes()
            except OSError:
                continue
            if any(form in chunk for chunk in _decoded(data) for form in forms):
                found.append(str(path))
    return found


@pytest.fixture(scope="module")
def secret_build(tmp_path_factory, busybox_tar):
    work = tmp_path_factory.mktemp("secrets")
    root = new_store(work / "root", busybox_tar)
    file_value = f"file-secret-{uuid.uuid4().hex}".encode()
    env_value = f"env-secret-{uuid.uuid4().hex}".encode()
    secret_dir = work / "private"
    secret_dir.mkdir(mode=0o700)
    (secret_dir / "tok.txt").write_bytes(file_value)
    ctx = write_context(work / "ctx", SECRET_DOCKERFILE)
    metadata = work / "metadata.json"
    env = dict(os.environ, MY_ENV_SECRET=env_value.decode())
    result = build(root, ctx, "-t", "secret:1", "--secret", f"id=tok,src={secret_dir / 'tok.txt'}",
                   "--secret", "id=envtok,env=MY_ENV_SECRET", "--metadata-file", str(metadata), env=env)
    ok(result)
    rawjson = build(root, ctx, "-t", "secret:1", "--progress", "rawjson", "--no-cache",
                    "--secret", f"id=tok,src={secret_dir / 'tok.txt'}", "--secret", "id=envtok,env=MY_ENV_SECRET",
                    env=env)
    ok(rawjson)
    saved = work / "saved.tar"
    ok(pb(root, "save", "-o", str(saved), "secret:1"))
    return {"root": root, "work": work, "file": file_value, "env": env_value, "progress": result.stderr + rawjson.stderr,
            "metadata": metadata, "saved": saved, "stdout": result.stdout + rawjson.stdout}


def _cat(root: Path, path: str) -> str:
    return ok(pb(root, "run", "--rm", "--network", "none", "secret:1", "cat", path))


def test_secret_is_readable_inside_the_run_file_and_env_forms(secret_build):
    root = secret_build["root"]
    assert _cat(root, "/tok.sha").strip() == hashlib.sha256(secret_build["file"]).hexdigest()
    assert _cat(root, "/envtok.sha").strip() == hashlib.sha256(secret_build["env"]).hexdigest()
    assert _cat(root, "/tok.stat").strip() == "400 0 0"                 # BuildKit's default: 0400 root
    assert _cat(root, "/custom.stat").strip() == "440 1000 1000"        # mode/uid/gid; relative target
    assert _cat(root, "/secrets.list").split() == ["tok"]
    assert _cat(root, "/envtok.file").strip() == "no-file"              # env= alone mounts no file
    assert _cat(root, "/absent.txt").strip() == "skipped"               # not required: skipped


def test_secret_value_appears_nowhere_afterwards(secret_build):
    values = (secret_build["file"], secret_build["env"])
    places = [secret_build["root"], secret_build["saved"], secret_build["metadata"]]
    for value in values:
        assert find_secret(places, value) == []
        for form in _forms(value):
            assert form not in secret_build["progress"] and form not in secret_build["stdout"]
    # the history shows the command (as BuildKit: without the --mount flags), never the value
    text = ok(pb(secret_build["root"], "history", "--no-trunc", "--format", "json", "secret:1"))
    text += ok(pb(secret_build["root"], "inspect", "secret:1"))
    assert "sha256sum /run/secrets/tok" in text
    assert all(form.decode() not in text for value in values for form in _forms(value))
    # the secret went through no temp file of the store or of /dev/shm either
    assert find_secret(["/dev/shm"], secret_build["file"]) == []


def test_the_search_finds_a_value_that_is_there(secret_build, tmp_path):
    # the search itself works: a value inside a gzipped tar member is found
    value = b"needle-" + uuid.uuid4().hex.encode()
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        info = tarfile.TarInfo("deep/file")
        info.size = len(value) + 2
        tar.addfile(info, io.BytesIO(b"<" + value + b">"))
    (tmp_path / "blob").write_bytes(gzip.compress(raw.getvalue()))
    assert find_secret([tmp_path], value) == [str(tmp_path / "blob")]


def test_missing_required_secret_fails_clearly(tmp_path, secret_build):
    ctx = write_context(tmp_path / "ctx", "FROM busybox\nRUN --mount=type=secret,id=nope,required true\n")
    result = build(secret_build["root"], ctx)
    message = result.stderr.decode()
    assert result.returncode == 1 and "Traceback" not in message, message
    assert "error: " in message and "Dockerfile:2: secret nope: not found" in message, message


def test_secret_flag_forms(tmp_path, secret_build):
    root = secret_build["root"]
    ctx = write_context(tmp_path / "ctx", "FROM busybox\nRUN --mount=type=secret,id=FOO_TOKEN,required "
                                          "md5sum < /run/secrets/FOO_TOKEN > /foo.md5\n")
    # id alone: the env var of that name when it is set (BuildKit's secretsprovider) ...
    env = dict(os.environ, FOO_TOKEN="from-env")
    ok(build(root, ctx, "-t", "foo:1", "--secret", "id=FOO_TOKEN", "--no-cache", env=env))
    assert ok(pb(root, "run", "--rm", "--network", "none", "foo:1", "cat", "/foo.md5")).split()[0] == hashlib.md5(b"from-env").hexdigest()
    # ... else a file named like the id; a missing file fails before the build starts
    message = fails(build(root, ctx, "--secret", f"id=x,src={tmp_path / 'missing'}"))
    assert "failed to stat" in message and "missing" in message
    (tmp_path / "big").write_bytes(b"x" * (500 * 1024 + 1))
    assert "too big" in fails(build(root, ctx, "--secret", f"id=big,src={tmp_path / 'big'}"))


def test_a_secret_never_changes_a_cache_key(tmp_path, secret_build):
    root = secret_build["root"]
    ctx = write_context(tmp_path / "ctx", "FROM busybox\nRUN --mount=type=secret,id=k,required cat /run/secrets/k "
                                          ">/dev/null; echo built\n")
    (tmp_path / "a").write_text("one")
    (tmp_path / "b").write_text("two")
    first = build(root, ctx, "--secret", f"id=k,src={tmp_path / 'a'}")
    second = build(root, ctx, "--secret", f"id=k,src={tmp_path / 'b'}")
    ok(first), ok(second)
    assert b"#1 CACHED" in second.stderr and b"CACHED" not in first.stderr
