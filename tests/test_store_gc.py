"""Garbage collection, leases and locks: roots keep what they reach, dead processes hold nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cache import (LockTimeout, Store, StoreError, register_root_provider, unregister_root_provider)
from helpers import REPO


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(tmp_path / "root", lock_timeout=10)
    yield s
    s.close()


def make_image(store: Store, name: bytes, *, snapshot: bool = False, shared_layer: bytes | None = None,
               manifest: bool = False):
    layers = []
    for content in filter(None, (shared_layer, b"layer of " + name)):
        tar = store.put_blob(content)
        gz = store.put_blob(b"gzip of " + content)
        layers.append(store.put_layer(tar.digest, tar.size, {"tar": tar, "gzip": gz}))
        if snapshot:
            tmp = store.prepare_snapshot(tar.digest)
            (tmp / "file").write_bytes(content)
            store.commit_snapshot(tar.digest, tmp, durable=False)
    cfg = store.put_blob(b'{"config": "%s"}' % name)
    man = None
    if manifest:
        doc = {"config": {"digest": cfg.digest}, "layers": [{"digest": l.blobs["gzip"].digest} for l in layers],
               "annotations": {"x": {"digest": store.put_blob(b"referrer of " + name).digest}}}
        man = store.put_blob(json.dumps(doc).encode())
    return store.put_image(cfg, [l.diff_id for l in layers], manifest=man)


def image_content(store: Store, img) -> set[str]:
    """Every blob an image keeps."""
    blobs = {img.config.digest}
    if img.manifest:
        blobs.add(img.manifest.digest)
    for d in img.layers:
        blobs.update(b.digest for b in store.get_layer(d).blobs.values())
    return blobs


def test_plain_gc_keeps_every_image_and_removes_unreachable(store: Store):
    img = make_image(store, b"untagged", snapshot=True, manifest=True)
    junk = store.put_blob(b"j" * 1000)
    loose = store.put_blob(b"loose layer")
    store.put_layer(loose.digest, loose.size, {"tar": loose})
    tmp = store.prepare_snapshot(loose.digest)
    (tmp / "f").write_bytes(b"12345")
    store.commit_snapshot(loose.digest, tmp, durable=False)
    referrer = json.loads(store.read_blob(img.manifest.digest))["annotations"]["x"]["digest"]

    result = store.gc()
    assert result.blobs_removed == 2 and result.layers_removed == 1 and result.images_removed == ()
    assert result.bytes_freed >= 1000 + loose.size + 5
    assert not store.has_blob(junk.digest) and not store.has_layer(loose.digest)
    assert store.has_image(img.id) and store.has_blob(referrer)  # a digest the manifest names is kept
    assert all(store.has_blob(d) for d in image_content(store, img))
    assert all(store.snapshot_path(d).is_dir() for d in img.layers)
    assert store.check() == () and os.listdir(store.layout.tmp) == []
    assert store.gc().bytes_freed == 0


def test_prune_dangling_removes_untagged_images_only(store: Store):
    kept = make_image(store, b"tagged", snapshot=True, shared_layer=b"common base")
    gone = make_image(store, b"dangling", snapshot=True, shared_layer=b"common base")
    store.set_tag("app:latest", kept.id)
    usage = store.disk_usage()
    assert (usage.images, usage.tagged_images, usage.layers, usage.snapshots) == (2, 1, 3, 3)

    dry = store.gc(prune_dangling=True, dry_run=True)
    assert dry.dry_run and dry.images_removed == (gone.id,) and store.has_image(gone.id)
    assert dry.bytes_freed == usage.reclaimable_bytes > 0
    result = store.gc(prune_dangling=True)
    assert result.images_removed == (gone.id,) and result.layers_removed == 1
    assert result.bytes_freed == dry.bytes_freed
    assert not store.has_image(gone.id) and not store.has_blob(gone.config.digest)
    assert store.has_layer(gone.layers[0])  # the shared base stays with the tagged image
    assert not store.has_layer(gone.layers[1])
    assert all(store.has_blob(d) for d in image_content(store, kept))
    assert store.check() == ()
    after = store.disk_usage()
    assert (after.images, after.layers, after.reclaimable_bytes) == (1, 2, 0)
    assert after.total_bytes == usage.total_bytes - result.bytes_freed


def test_leases_protect_what_is_in_use(store: Store):
    with store.lease("build") as lease:
        info = store.put_blob(b"written during the build")  # added to the lease as it is published
        assert info.digest in lease.refs
        assert [l.name for l in store.leases()] == ["build"]
        assert store.gc(prune_dangling=True).blobs_removed == 0
        assert store.has_blob(info.digest)
    assert store.leases() == []
    assert store.gc().blobs_removed == 1


def test_released_lease_refuses_refs(store: Store):
    lease = store.lease("short")
    lease.release()
    with pytest.raises(StoreError, match="released"):
        lease.add(store.put_blob(b"late").digest)


def test_lease_on_existing_content_and_on_an_image(store: Store):
    img = make_image(store, b"leased")
    other = store.put_blob(b"other")
    lease = store.lease("pull", [img.id])
    lease.add(other.digest)
    store.gc(prune_dangling=True)
    assert store.has_image(img.id) and store.has_blob(other.digest)
    assert all(store.has_blob(d) for d in image_content(store, img))
    lease.release()
    assert store.gc(prune_dangling=True).images_removed == (img.id,)
    assert store.blob_digests() == []


HOLD_LEASE = r"""
import sys, time
from cache import Store
s = Store(sys.argv[1])
lease = s.lease("other process", [sys.argv[2]])
print("ready", flush=True)
time.sleep(60)
"""

HOLD_LOCK = r"""
import sys, time
from cache import Store
s = Store(sys.argv[1], sweep=False)
with (s.locks.shared() if sys.argv[2] == "shared" else s.locks.exclusive()):
    print("ready", flush=True)
    time.sleep(60)
"""


def spawn(code: str, *args: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", code, *args], cwd=REPO, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    return proc


def kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    proc.stdout.close()


def test_lease_of_another_process_and_stale_lease(store: Store):
    info = store.put_blob(b"used by another process")
    proc = spawn(HOLD_LEASE, str(store.root), info.digest)
    try:
        live = store.leases()
        assert [(l.name, l.pid, l.refs) for l in live] == [("other process", proc.pid, {info.digest})]
        assert store.gc().blobs_removed == 0 and store.has_blob(info.digest)
    finally:
        kill(proc)
    assert store.leases() == []  # its owner is dead: stale, ignored
    result = store.gc()
    assert result.leases_removed == 1 and result.blobs_removed == 1
    assert os.listdir(store.layout.leases) == []


def test_root_providers(store: Store):
    cache_entry = store.put_blob(b"build cache layer")
    store.put_layer(cache_entry.digest, cache_entry.size, {"tar": cache_entry})
    register_root_provider("test-build-cache", lambda s: [cache_entry.digest])
    try:
        assert store.gc().layers_removed == 0 and store.has_layer(cache_entry.digest)
    finally:
        unregister_root_provider("test-build-cache")

    def broken(_s):
        raise OSError("index unreadable")

    register_root_provider("test-broken", broken)
    try:
        with pytest.raises(StoreError, match="test-broken.*nothing was deleted"):
            store.gc()
        assert store.has_layer(cache_entry.digest)
    finally:
        unregister_root_provider("test-broken")
    assert store.gc().layers_removed == 1


def test_gc_removes_stale_temp_but_not_live_writes(store: Store):
    stale = store.layout.tmp / "blob-99999-deadbeef"
    stale.write_bytes(b"left by a dead writer")
    (store.layout.tmp / "snap-dead").mkdir()
    (store.layout.tmp / "snap-dead" / "f").write_bytes(b"x")
    with store.blob_writer() as w:
        w.write(b"in progress")
        snap = store.prepare_snapshot("sha256:" + "a" * 64)
        result = store.gc()
        assert result.temp_removed == 2 and result.bytes_freed == 22
        assert sorted(os.listdir(store.layout.tmp)) == sorted([w.temp_path.name, snap.name])
        info = w.commit()
    assert store.read_blob(info.digest) == b"in progress"
    store.abort_snapshot(snap)


def test_key_locks_are_swept(store: Store):
    make_image(store, b"with key locks")
    assert os.listdir(store.layout.key_locks)
    store.gc()
    assert os.listdir(store.layout.key_locks) == []


def test_gc_waits_for_writers_and_names_the_holder(store: Store):
    proc = spawn(HOLD_LOCK, str(store.root), "shared")
    try:
        with pytest.raises(LockTimeout) as e:
            store.gc(timeout=0.2)
        assert e.value.holder_pid == proc.pid
        assert "store lock" in str(e.value) and f"pid {proc.pid}" in str(e.value)
    finally:
        kill(proc)
    assert store.gc(timeout=2).dry_run is False  # the dead holder's lock is gone


def test_writers_wait_for_gc_and_dead_holders_release(tmp_path: Path):
    store = Store(tmp_path / "root", lock_timeout=0.2)
    proc = spawn(HOLD_LOCK, str(store.root), "exclusive")
    try:
        with pytest.raises(LockTimeout) as e:
            store.put_blob(b"blocked")
        assert e.value.holder_pid == proc.pid and str(store.layout.locks / "store.lock") in str(e.value)
        assert Store(store.root).sweep_temp() == 0  # the sweep on open skips a busy store
    finally:
        kill(proc)
    assert store.put_blob(b"free again").size == 10


BUSY_WRITER = r"""
import sys
from cache import Store
s = Store(sys.argv[1])
for i in range(int(sys.argv[2])):
    with s.lease(f"build {i}"):
        tar = s.put_blob(b"layer %d" % i)
        s.put_layer(tar.digest, tar.size, {"tar": tar})
        snap = s.prepare_snapshot(tar.digest)
        (snap / "f").write_bytes(b"%d" % i)
        s.commit_snapshot(tar.digest, snap, durable=False)
        cfg = s.put_blob(b'{"n": %d}' % i)
        s.set_tag(f"img:{i}", s.put_image(cfg, [tar.digest]).id)
    s.put_blob(b"garbage %d" % i)
"""


def test_gc_running_against_a_busy_writer_never_breaks_a_record(store: Store):
    n = 30
    proc = subprocess.Popen([sys.executable, "-c", BUSY_WRITER, str(store.root), str(n)], cwd=REPO)
    collections = 0
    while proc.poll() is None:
        store.gc(prune_dangling=True)
        collections += 1
        time.sleep(0.005)
    assert proc.returncode == 0 and collections > 1
    assert store.check() == ()
    assert len(store.tags()) == n
    for i in range(n):
        img = store.get_image(store.resolve(f"img:{i}"))
        assert store.read_blob(img.config.digest) == b'{"n": %d}' % i
        assert (store.snapshot_path(img.layers[0]) / "f").read_bytes() == b"%d" % i
    store.gc()
    assert not any(store.read_blob(d).startswith(b"garbage") for d in store.blob_digests())
