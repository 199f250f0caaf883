"""Blob contracts of the content store: idempotent put, expected digests, verification on read."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import pytest

from cache import (BlobInfo, BlobNotFound, CorruptBlob, DigestMismatch, InvalidDigest, Store, StoreError,
                   default_root)


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "root")


def temp_entries(store: Store) -> list[str]:
    return os.listdir(store.layout.tmp)


def test_put_stores_under_its_digest(store: Store):
    info = store.put_blob(b"hello")
    assert info == BlobInfo(sha(b"hello"), 5)
    path = store.root / "blobs" / "sha256" / info.digest[7:]
    assert path.read_bytes() == b"hello"
    assert store.blob_path(info.digest) == path
    assert store.has_blob(info.digest) and store.blob_info(info.digest) == info
    assert store.blob_digests() == [info.digest]
    assert temp_entries(store) == []


def test_put_is_idempotent_and_the_existing_verified_blob_wins(store: Store):
    first = store.put_blob(b"same bytes")
    inode = os.stat(store.blob_path(first.digest)).st_ino
    assert store.put_blob(b"same bytes") == first
    assert store.put_blob(io.BytesIO(b"same bytes"), expected=first.digest) == first
    assert os.stat(store.blob_path(first.digest)).st_ino == inode  # not rewritten
    assert store.blob_digests() == [first.digest] and temp_entries(store) == []


def test_put_accepts_files_iterables_and_streams(store: Store, tmp_path: Path):
    data = os.urandom(3 * (1 << 20) + 17)
    src = tmp_path / "src"
    src.write_bytes(data)
    with open(src, "rb") as f:
        assert store.put_blob(f) == BlobInfo(sha(data), len(data))

    class ReadOnly:  # has read() but no readinto()
        def __init__(self):
            self.f = io.BytesIO(b"abc" * 1000)

        def read(self, n):
            return self.f.read(n)

    assert store.put_blob(ReadOnly()).digest == sha(b"abc" * 1000)
    chunks = [b"x" * 10, b"", b"y" * 5]
    assert store.put_blob(iter(chunks)) == BlobInfo(sha(b"".join(chunks)), 15)
    assert store.read_blob(sha(data)) == data


def test_expected_digest_mismatch_names_both_and_leaves_nothing(store: Store):
    wrong = sha(b"something else")
    with pytest.raises(DigestMismatch) as e:
        store.put_blob(iter([b"actual content"]), expected=wrong)
    assert e.value.expected == wrong and e.value.actual == sha(b"actual content")
    assert wrong in str(e.value) and sha(b"actual content") in str(e.value)
    with pytest.raises(DigestMismatch):
        store.put_blob(b"actual content", expected=wrong)
    assert store.blob_digests() == [] and temp_entries(store) == []


def test_expected_size_mismatch(store: Store):
    data = b"12345"
    with pytest.raises(DigestMismatch) as e:
        store.put_blob(iter([data]), expected=BlobInfo(sha(data), 4))
    assert (e.value.expected_size, e.value.actual_size) == (4, 5)
    with pytest.raises(DigestMismatch):
        store.put_blob(iter([data]), expected=BlobInfo(sha(data), 6))
    assert store.blob_digests() == [] and temp_entries(store) == []


def test_blob_writer_streams_and_commits(store: Store):
    with store.blob_writer() as w:
        for i in range(1000):
            w.write(b"%d\n" % i)
        assert w.temp_path is not None and w.temp_path.parent == store.layout.tmp
        assert store.blob_digests() == []  # nothing visible before commit
        info = w.commit()
        assert w.commit() == info
    data = b"".join(b"%d\n" % i for i in range(1000))
    assert info == BlobInfo(sha(data), len(data)) and w.size == len(data)
    assert store.read_blob(info.digest) == data and temp_entries(store) == []


def test_blob_writer_aborts_on_exception_and_without_commit(store: Store):
    with pytest.raises(RuntimeError):
        with store.blob_writer() as w:
            w.write(b"partial")
            raise RuntimeError("producer failed")
    with store.blob_writer() as w:
        w.write(b"never committed")
    assert store.blob_digests() == [] and temp_entries(store) == []
    with pytest.raises(ValueError):
        w.write(b"more")


def test_blob_writer_with_expected(store: Store):
    data = b"payload" * 100
    with store.blob_writer(BlobInfo(sha(data), len(data))) as w:
        w.write(data)
        assert w.commit().digest == sha(data)
    with pytest.raises(DigestMismatch):
        with store.blob_writer(sha(b"other")) as w:
            w.write(data)
            w.commit()
    with pytest.raises(DigestMismatch) as e:  # a producer that overruns the size stops at once
        with store.blob_writer(BlobInfo(sha(data), 10)) as w:
            w.write(b"x" * 8)
            w.write(b"x" * 8)
    assert e.value.actual_size == 16
    assert store.blob_digests() == [sha(data)] and temp_entries(store) == []


def corrupt(store: Store, digest: str, data: bytes) -> Path:
    path = store.blob_path(digest)
    os.chmod(path, 0o644)
    path.write_bytes(data)
    return path


def test_reads_verify(store: Store):
    info = store.put_blob(b"original content")
    path = corrupt(store, info.digest, b"tampered content")
    for read in (store.read_blob, store.verify_blob):
        with pytest.raises(CorruptBlob) as e:
            read(info.digest)
        assert e.value.digest == info.digest and e.value.path == path
        assert info.digest in str(e.value) and str(path) in str(e.value)
        assert e.value.actual == sha(b"tampered content")


def test_open_blob_hashes_as_it_reads(store: Store):
    data = os.urandom(2 * (1 << 20) + 3)
    info = store.put_blob(data)
    with store.open_blob(info.digest) as r:
        assert r.read() == data and r.size == len(data)
    with store.open_blob(info.digest) as r:  # chunked reads to the end
        got = b"".join(iter(lambda: r.read(65536), b""))
    assert got == data
    with io.BufferedReader(store.open_blob(info.digest)) as r:
        assert r.read() == data
    corrupt(store, info.digest, data[:-1] + bytes([data[-1] ^ 1]))
    with store.open_blob(info.digest) as r:
        assert len(r.read(1000)) == 1000  # an early close reads unverified bytes, without error
    with pytest.raises(CorruptBlob) as e:
        with store.open_blob(info.digest) as r:
            while r.read(65536):
                pass
    assert e.value.digest == info.digest and e.value.path == store.blob_path(info.digest)
    corrupt(store, info.digest, data + b"extra")  # a longer file fails too
    with pytest.raises(CorruptBlob):
        store.open_blob(info.digest).read()


def test_put_with_expected_repairs_a_corrupt_blob(store: Store):
    info = store.put_blob(b"good")
    corrupt(store, info.digest, b"bad!")
    assert store.put_blob(b"good", expected=info) == info
    assert store.verify_blob(info.digest) == info


def test_missing_and_invalid_digests(store: Store):
    missing = sha(b"never stored")
    for call in (store.read_blob, store.verify_blob, store.open_blob, store.blob_info):
        with pytest.raises(BlobNotFound) as e:
            call(missing)
        assert e.value.subject == missing
    for bad in ("sha256:" + "A" * 64, "sha512:" + "a" * 64, "sha256:../../../etc/passwd", "", None):
        with pytest.raises(InvalidDigest) as e:
            store.has_blob(bad)  # type: ignore[arg-type]
        assert isinstance(e.value, (StoreError, ValueError))


def test_default_root():
    assert default_root({"PYBUILD_ROOT": "/srv/pb"}, euid=0) == Path("/srv/pb")
    assert default_root({}, euid=0) == Path("/var/lib/pybuild")
    assert default_root({"XDG_DATA_HOME": "/x/data", "HOME": "/home/u"}, euid=1000) == Path("/x/data/pybuild")
    assert default_root({"XDG_DATA_HOME": "rel", "HOME": "/home/u"}, euid=1000) == \
        Path("/home/u/.local/share/pybuild")
    assert default_root({"HOME": "/home/u"}, euid=1000) == Path("/home/u/.local/share/pybuild")


def test_store_open_uses_the_environment(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("PYBUILD_ROOT", str(tmp_path / "envroot"))
    assert Store.open().root == tmp_path / "envroot"
    assert Store.open(tmp_path / "explicit").root == tmp_path / "explicit"
    assert (tmp_path / "envroot" / "blobs" / "sha256").is_dir()
    assert oct((tmp_path / "envroot").stat().st_mode & 0o777) == "0o700"


def test_large_put_runs_at_disk_speed(store: Store):
    data = os.urandom(1 << 20) * 64
    info = store.put_blob(iter(data[i:i + (1 << 20)] for i in range(0, len(data), 1 << 20)))
    assert info.size == len(data)
    assert store.verify_blob(info.digest) == info
