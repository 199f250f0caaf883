"""Registry faults against a real registry (``registry_fixtures.make_registry``: a private docker-registry
per test, which the test kills, restarts or tampers with).

* The registry killed (SIGKILL) in the middle of a push of a large layer and restarted on the same port
  and storage a moment later: ``pybuild push`` retries with backoff and completes; the image pulls back
  into an empty store with the same digest and image ID.
* The same, in-process and at an exact point: the client's chunked and monolithic uploads cut off at a
  chosen offset by a kill, resumed (or restarted) after the registry is back; a blob download cut off
  in the middle resumes with a Range request.
* A registry serving content that does not hash to its digest (a layer, the config, the manifest;
  the bytes changed in its storage directory): the pull fails with a clear digest error, exit 1, and
  the store gains no blob, layer, image or tag, and passes ``check()``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from helpers import REPO
from image_fixtures import fails, ok, pb
from registry_fixtures import isolated_user_env, unique_repo

MiB = 1 << 20


@pytest.fixture
def env(tmp_path):
    return isolated_user_env(tmp_path)


@pytest.fixture
def client_env(tmp_path, monkeypatch, env):
    """The same, in this process (for tests that drive builder.registry.client directly)."""
    from builder.registry.client import Registry

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    Registry.forget_all()
    yield
    Registry.forget_all()


def store_of(root):
    from cache import Store

    return Store(root, sweep=False)


def snapshot(root) -> dict:
    """What a user could see of a store: images, tags, blobs, layers."""
    store = store_of(root)
    return {"images": sorted(store.image_ids()), "tags": dict(store.tags()), "blobs": sorted(store.blob_digests()),
            "layers": sorted(store.layer_diff_ids())}


def pushed_digest(stdout: str, tag: str) -> str:
    found = re.findall(rf"^{re.escape(tag)}: digest: (sha256:[0-9a-f]{{64}}) size: \d+$", stdout, re.MULTILINE)
    assert len(found) == 1, stdout
    return found[0]


def pulled_digest(stdout: str) -> str:
    found = re.findall(r"^Digest: (sha256:[0-9a-f]{64})$", stdout, re.MULTILINE)
    assert len(found) == 1, stdout
    return found[0]


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def uploads_in_progress(server, repo: str) -> list[Path]:
    """The registry's partial upload files for ``repo`` (filesystem driver layout)."""
    uploads = server.storage / "docker/registry/v2/repositories" / repo / "_uploads"
    return list(uploads.glob("*/data")) if uploads.is_dir() else []


def restart_later(server, delay: float = 1.5) -> threading.Thread:
    """Start ``server`` again (same port, same storage) after ``delay`` seconds, in a thread."""
    def later():
        time.sleep(delay)
        server.start()

    thread = threading.Thread(target=later, name="registry-restart", daemon=True)
    thread.start()
    return thread


# ----------------------------------------------------------------------------------------------
# killed in the middle of a push


def test_push_completes_after_the_registry_is_killed_mid_upload(tmp_path, registry, make_registry, env):
    """A 160 MiB layer (chunked upload); SIGKILL once the registry holds part of it, restart 1.5 s later."""
    size = 160 * MiB
    root = tmp_path / "root"
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM scratch\nCOPY blob.bin /blob.bin\n")
    (ctx / "blob.bin").write_bytes(random.Random(160).randbytes(size))     # gzip cannot shrink it
    repo = unique_repo("killed")
    server = make_registry()
    name = f"{server.host}/{repo}:1"
    image_id = ok(pb(root, "build", "-q", "-t", name, str(ctx), env=env)).strip()
    # the gzip blob is made (and kept) by a first push elsewhere, so the push below uploads at once
    warm = f"{registry.host}/{unique_repo('warm')}:1"
    ok(pb(root, "tag", name, warm, env=env))
    ok(pb(root, "push", "-q", warm, env=env))

    push = subprocess.Popen([sys.executable, "-m", "builder.cli", "--root", str(root), "push", name], cwd=REPO,
                            env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        held = 0
        deadline = time.monotonic() + 120
        while push.poll() is None and time.monotonic() < deadline:
            partial = [p.stat().st_size for p in uploads_in_progress(server, repo) if p.exists()]
            if partial and max(partial) >= 8 * MiB:
                server.kill()
                held = max(p.stat().st_size for p in uploads_in_progress(server, repo))
                break
            time.sleep(0.002)
        assert held, "the push ended before the registry held part of the layer"
        restarter = restart_later(server)
        stdout, stderr = push.communicate(timeout=300)
        restarter.join(60)
    finally:
        if push.poll() is None:
            push.kill()
            push.wait()
    assert push.returncode == 0, stderr.decode(errors="replace")
    assert b"Traceback" not in stderr
    assert held < size + MiB          # the registry had part of it when it died
    digest = pushed_digest(stdout.decode(), "1")

    fresh = tmp_path / "fresh"
    out = ok(pb(fresh, "pull", name, env=env))
    assert pulled_digest(out) == digest
    assert ok(pb(fresh, "images", "-q", "--no-trunc", name, env=env)).strip() == image_id
    assert store_of(fresh).check() == ()


class KillingStream(io.BytesIO):
    """The blob's bytes; the first read that crosses ``kill_at`` SIGKILLs the registry and schedules its
    restart, so the upload breaks at a known offset."""

    def __init__(self, data: bytes, offset: int, server, kill_at: int, state: dict):
        super().__init__(data)
        self.seek(offset)
        self.server, self.kill_at, self.state = server, kill_at, state

    def read(self, n=-1):
        before = self.tell()
        chunk = super().read(n)
        if not self.state.get("killed") and before <= self.kill_at < before + len(chunk):
            self.state["killed"] = True
            self.server.kill()
            self.state["restart"] = restart_later(self.server)
        return chunk


@pytest.mark.parametrize("chunk_size", [8 * MiB, 0], ids=["chunked", "monolithic"])
def test_upload_resumes_after_a_kill_at_a_known_offset(make_registry, client_env, chunk_size):
    from builder.registry.client import Registry

    server = make_registry()
    data = random.Random(chunk_size).randbytes(48 * MiB)
    digest = sha256(data)
    state: dict = {}
    opened: list[int] = []

    def opener(offset: int):
        opened.append(offset)
        return KillingStream(data, offset, server, 20 * MiB, state)

    reg = Registry.for_host(server.host)
    repo = unique_repo("resume")
    reg.upload_blob(repo, digest, len(data), opener, chunk_size=chunk_size)
    state["restart"].join(60)
    assert state["killed"] and len(opened) >= 2, opened
    if chunk_size:
        # chunks the registry had committed before it died were not sent again
        assert max(opened[1:]) >= 16 * MiB, opened
    assert reg.blob_size(repo, digest) == len(data)
    with reg.open_blob(repo, digest) as stream:
        assert sha256(stream.read()) == digest


def test_download_resumes_after_a_kill_mid_blob(make_registry, client_env):
    from builder.registry.client import Registry

    server = make_registry()
    data = random.Random(7).randbytes(64 * MiB)
    digest = sha256(data)
    reg = Registry.for_host(server.host)
    repo = unique_repo("download")
    reg.upload_blob(repo, digest, len(data), lambda offset: io.BytesIO(data[offset:]))

    hasher = hashlib.sha256()
    got = 0
    with reg.open_blob(repo, digest) as stream:
        while got < 8 * MiB:
            chunk = stream.read(MiB)
            hasher.update(chunk)
            got += len(chunk)
        server.kill()
        restarter = restart_later(server)
        while chunk := stream.read(MiB):
            hasher.update(chunk)
            got += len(chunk)
    restarter.join(60)
    assert got == len(data)
    assert "sha256:" + hasher.hexdigest() == digest
    assert server.log().count(f"/blobs/{digest}") >= 2   # asked again (with a Range) after the restart


# ----------------------------------------------------------------------------------------------
# content that does not match its digest


@pytest.fixture
def tampered(tmp_path, make_registry, busybox_tar, env):
    """A private registry with a two-layer image pushed by pybuild: (server, name, blobs by role)."""
    server = make_registry()
    src = tmp_path / "src"
    ok(pb(src, "import", str(busybox_tar), "busybox:latest", env=env))
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox\nRUN echo top > /top\n")
    name = f"{server.host}/{unique_repo('tamper')}:1"
    out = ok(pb(src, "build", "-q", "-t", name, str(ctx), env=env))
    assert out.strip()
    digest = pushed_digest(ok(pb(src, "push", name, env=env)), "1")
    manifest = json.loads(server.blob_data(digest).read_bytes())
    roles = {"manifest": digest, "config": manifest["config"]["digest"], "top layer": manifest["layers"][-1]["digest"]}
    return server, name, roles


def flip_bytes(path: Path) -> None:
    """Same size, other bytes (the registry still serves it under the same digest)."""
    data = bytearray(path.read_bytes())
    for i in range(len(data) // 2, min(len(data), len(data) // 2 + 64)):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def change_json_keeping_it_valid(path: Path) -> None:
    """A manifest the registry can still parse and serve, with one digit changed (same size)."""
    text = path.read_text()
    changed = re.sub(r'("size":\s*)(\d)', lambda m: m.group(1) + str((int(m.group(2)) + 1) % 10), text, count=1)
    assert changed != text and len(changed) == len(text)
    path.write_text(changed)


@pytest.fixture
def store_with_busybox(tmp_path, busybox_tar, env):
    """A store that already holds something (which a failed pull must leave as it was)."""
    root = tmp_path / "dest"
    ok(pb(root, "import", str(busybox_tar), "busybox:latest", env=env))
    return root


@pytest.mark.parametrize("role", ["top layer", "config"])
def test_a_blob_that_does_not_match_its_digest_stores_nothing(tampered, store_with_busybox, env, role):
    server, name, roles = tampered
    flip_bytes(server.blob_data(roles[role]))
    before = snapshot(store_with_busybox)

    err = fails(pb(store_with_busybox, "pull", name, env=env))
    assert roles[role] in err, err
    assert "does not match" in err or "hashes to" in err, err
    assert server.host in err
    assert snapshot(store_with_busybox) == before
    assert store_of(store_with_busybox).check() == ()
    # nothing half-written is left either
    tmp = Path(store_with_busybox) / "tmp"
    assert not tmp.exists() or not any(tmp.iterdir())


@pytest.mark.parametrize("by", ["tag", "digest"])
def test_a_manifest_that_does_not_match_its_digest_stores_nothing(tampered, store_with_busybox, env, by):
    server, name, roles = tampered
    change_json_keeping_it_valid(server.blob_data(roles["manifest"]))
    before = snapshot(store_with_busybox)
    target = name if by == "tag" else f"{name.rsplit(':', 1)[0]}@{roles['manifest']}"

    err = fails(pb(store_with_busybox, "pull", target, env=env))
    assert roles["manifest"] in err, err
    assert server.host in err
    assert snapshot(store_with_busybox) == before
    assert store_of(store_with_busybox).check() == ()
