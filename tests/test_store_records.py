"""Layer and image records, snapshots and tags: atomic, checked, cached, safe between processes."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cache import (BlobInfo, BlobNotFound, DigestMismatch, ImageRecord, LayerRecord, RecordError, RecordNotFound,
                   Store, StoreError)
from helpers import REPO


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "root")


def put_layer(store: Store, content: bytes) -> LayerRecord:
    tar = store.put_blob(content)
    return store.put_layer(tar.digest, tar.size, {"tar": tar})


def put_image(store: Store, config: bytes = b'{"c":1}', layers: tuple[bytes, ...] = (b"layer-a",),
              manifest: bytes | None = None):
    recs = [put_layer(store, c) for c in layers]
    cfg = store.put_blob(config)
    man = store.put_blob(manifest) if manifest is not None else None
    return store.put_image(cfg, [r.diff_id for r in recs], manifest=man)


def test_layer_record_roundtrip_and_file(store: Store):
    rec = put_layer(store, b"tar bytes")
    assert store.get_layer(rec.diff_id) == rec and store.has_layer(rec.diff_id)
    assert rec.size == 9 and rec.snapshot is False and set(rec.blobs) == {"tar"}
    on_disk = json.loads(store.layout.layer_record(rec.diff_id).read_bytes())
    assert on_disk["diff_id"] == rec.diff_id and on_disk["blobs"]["tar"]["size"] == 9
    assert store.layer_diff_ids() == [rec.diff_id]
    with pytest.raises(dataclasses.FrozenInstanceError):
        rec.size = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        rec.blobs["gzip"] = rec.blobs["tar"]  # type: ignore[index]


def test_layer_record_checks_what_it_refers_to(store: Store):
    tar = BlobInfo("sha256:" + "1" * 64, 3)
    with pytest.raises(BlobNotFound):
        store.put_layer(tar.digest, 3, {"tar": tar})
    real = store.put_blob(b"abc")
    with pytest.raises(DigestMismatch):
        store.put_layer(real.digest, 4, {"tar": BlobInfo(real.digest, 4)})
    with pytest.raises(ValueError):  # the tar form is the layer itself
        store.put_layer("sha256:" + "2" * 64, 3, {"tar": real})
    with pytest.raises(ValueError):
        store.put_layer(real.digest, 3, {"brotli": real})
    assert store.layer_diff_ids() == []


def test_layer_records_merge_forms_and_reject_contradictions(store: Store):
    rec = put_layer(store, b"layer content")
    gz = store.put_blob(b"pretend gzip")
    merged = store.add_layer_blob(rec.diff_id, "gzip", gz)
    assert set(merged.blobs) == {"gzip", "tar"} and merged.created == rec.created
    assert store.put_layer(rec.diff_id, rec.size) == merged  # idempotent, nothing lost
    with pytest.raises(RecordError) as e:
        store.put_layer(rec.diff_id, rec.size + 1)
    assert str(store.layout.layer_record(rec.diff_id)) in str(e.value)
    with pytest.raises(RecordNotFound):
        store.add_layer_blob("sha256:" + "3" * 64, "gzip", gz)


def test_snapshot_prepare_and_commit(store: Store):
    rec = put_layer(store, b"with snapshot")
    tmp = store.prepare_snapshot(rec.diff_id)
    assert tmp.parent == store.layout.tmp and os.listdir(tmp) == []
    assert oct(tmp.stat().st_mode & 0o777) == "0o755"
    (tmp / "etc").mkdir()
    (tmp / "etc" / "hostname").write_text("box\n")
    with pytest.raises(RecordNotFound):
        store.snapshot_path(rec.diff_id)
    done = store.commit_snapshot(rec.diff_id, tmp)
    assert done.snapshot and store.get_layer(rec.diff_id).snapshot
    path = store.snapshot_path(rec.diff_id)
    assert path == store.layout.layer_dir(rec.diff_id) / "diff"
    assert (path / "etc" / "hostname").read_text() == "box\n"
    assert not tmp.exists() and os.listdir(store.layout.tmp) == []


def test_second_snapshot_loses_and_one_copy_remains(store: Store):
    rec = put_layer(store, b"raced")
    a, b = store.prepare_snapshot(rec.diff_id), store.prepare_snapshot(rec.diff_id)
    (a / "from-a").write_text("a")
    (b / "from-b").write_text("b")
    store.commit_snapshot(rec.diff_id, a, durable=False)
    store.commit_snapshot(rec.diff_id, b, durable=False)
    assert sorted(os.listdir(store.snapshot_path(rec.diff_id))) == ["from-a"]
    assert os.listdir(store.layout.tmp) == []


def test_snapshot_needs_its_record_and_can_be_aborted(store: Store):
    diff_id = "sha256:" + "4" * 64
    tmp = store.prepare_snapshot(diff_id)
    with pytest.raises(RecordNotFound):
        store.commit_snapshot(diff_id, tmp)
    assert tmp.is_dir()  # still the caller's to commit later or abort
    store.abort_snapshot(tmp)
    assert not tmp.exists()
    with pytest.raises(StoreError):
        store.commit_snapshot(diff_id, store.root / "elsewhere")
    kept = store.prepare_snapshot(diff_id)
    store.close()  # uncommitted snapshot dirs go with their store
    assert not kept.exists()


def test_record_that_does_not_parse_names_the_file(store: Store):
    rec = put_layer(store, b"x")
    path = store.layout.layer_record(rec.diff_id)
    path.write_text("{not json")
    with pytest.raises(RecordError) as e:
        store.get_layer(rec.diff_id)
    assert e.value.path == path and str(path) in str(e.value)
    path.write_text(json.dumps({"diff_id": rec.diff_id}))
    with pytest.raises(RecordError, match="missing field"):
        store.get_layer(rec.diff_id)
    store.layout.tags_file.write_text('{"tags": {"a": "not-a-digest"}}')
    with pytest.raises(RecordError) as e:
        store.tags()
    assert e.value.path == store.layout.tags_file


def test_record_writes_are_atomic(store: Store, monkeypatch):
    rec = put_layer(store, b"atomic")
    path = store.layout.layer_record(rec.diff_id)
    before = path.read_bytes()
    inode = path.stat().st_ino
    gz = store.put_blob(b"gz")
    store.add_layer_blob(rec.diff_id, "gzip", gz)
    assert path.stat().st_ino != inode  # replaced by rename, never rewritten in place
    after = path.read_bytes()

    def failing_rename(src, dst):
        raise OSError("disk on fire")

    zs = store.put_blob(b"zs")
    monkeypatch.setattr(os, "rename", failing_rename)
    with pytest.raises(OSError, match="disk on fire"):
        store.add_layer_blob(rec.diff_id, "zstd", zs)
    monkeypatch.undo()
    assert path.read_bytes() == after != before
    assert os.listdir(store.layout.tmp) == []


def test_record_cache_follows_the_file(store: Store, tmp_path: Path):
    rec = put_layer(store, b"cached")
    first = store.get_layer(rec.diff_id)
    assert store.get_layer(rec.diff_id) is first  # unchanged file: no re-read
    other = Store(store.root)  # another writer (could be another process)
    other.add_layer_blob(rec.diff_id, "gzip", other.put_blob(b"gz form"))
    assert set(store.get_layer(rec.diff_id).blobs) == {"gzip", "tar"}


def test_image_records(store: Store):
    manifest = b'{"schemaVersion": 2,   "odd": "spacing kept"}'
    img = put_image(store, layers=(b"base", b"top"), manifest=manifest)
    assert img.id == img.config.digest and img.size == 4 + 3
    assert store.read_blob(img.manifest.digest) == manifest  # byte-exact
    assert store.get_image(img.id) == img and store.image_ids() == [img.id] and store.images() == [img]
    again = store.put_image(img.config, img.layers, meta={"source": "pull"})
    assert again.created == img.created and again.manifest == img.manifest and again.meta == {"source": "pull"}
    assert store.put_image(img.config, img.layers).meta == {"source": "pull"}
    with pytest.raises(ValueError):
        ImageRecord(id="sha256:" + "5" * 64, config=img.config, layers=())


def test_image_record_refuses_missing_content(store: Store):
    cfg = store.put_blob(b"{}")
    with pytest.raises(RecordNotFound):
        store.put_image(cfg, ["sha256:" + "6" * 64])
    with pytest.raises(BlobNotFound):
        store.put_image(BlobInfo("sha256:" + "7" * 64, 2), [])
    with pytest.raises(BlobNotFound):
        store.put_image(cfg, [], manifest=BlobInfo("sha256:" + "8" * 64, 2))
    with pytest.raises(RecordNotFound):
        store.get_image("sha256:" + "7" * 64)
    assert store.image_ids() == []


def test_tags(store: Store):
    a = put_image(store, config=b'{"a":1}')
    b = put_image(store, config=b'{"b":1}')
    assert store.set_tag("docker.io/library/app:1", a.id) is None
    assert store.set_tag("docker.io/library/app:latest", a.id) is None
    assert store.resolve("docker.io/library/app:1") == a.id and store.resolve("nope") is None
    assert store.tags_for(a.id) == ("docker.io/library/app:1", "docker.io/library/app:latest")
    assert store.set_tag("docker.io/library/app:latest", b.id) == a.id
    assert store.tags() == {"docker.io/library/app:1": a.id, "docker.io/library/app:latest": b.id}
    assert store.remove_tag("docker.io/library/app:1") == a.id and store.remove_tag("gone") is None
    with pytest.raises(RecordNotFound):
        store.set_tag("x", "sha256:" + "9" * 64)
    assert store.remove_image(b.id) == ("docker.io/library/app:latest",)
    assert store.tags() == {} and not store.has_image(b.id) and store.has_image(a.id)
    assert store.check(verify_blobs=True) == ()


TAGGER = r"""
import sys
from cache import Store
root, who, image_id = sys.argv[1], sys.argv[2], sys.argv[3]
s = Store(root)
for i in range(25):
    s.set_tag(f"{who}:{i}", image_id)
"""


def test_concurrent_taggers_lose_no_update(store: Store):
    img = put_image(store)
    procs = [subprocess.Popen([sys.executable, "-c", TAGGER, str(store.root), f"p{n}", img.id], cwd=REPO)
             for n in range(4)]
    assert [p.wait(timeout=60) for p in procs] == [0, 0, 0, 0]
    assert len(store.tags()) == 100 and set(store.tags().values()) == {img.id}
