"""The image store under the conditions a user does not plan for, through the CLI.

(a) reproducibility: the same tree, made two different ways (creation order, inode numbers, mtimes),
    imported with one SOURCE_DATE_EPOCH gives one image ID; without the epoch the two imports differ
    only in their ``created`` times;
(b) corruption: a flipped byte in a stored config or layer blob, or a file changed inside an imported
    layer's snapshot, makes ``inspect`` / ``save`` fail with an error naming the digest (exit 1, no
    traceback, no half-written output file);
(c) crash safety: ``pybuild load`` of a ~300 MB layer SIGKILLed mid-write leaves nothing half-loaded
    visible, and loading again works;
(d) two ``pybuild load`` of one archive at once, fed in lockstep, both succeed and leave one
    consistent image.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

import pytest

from cache import Store
from helpers import REPO
from image_fixtures import _BYTECODE, fails, ok, pb, pb_all, run
from treecompare import diff_trees, make_special_rootfs, tree_manifest

EPOCH = 1600000000  # 2020-09-13


def pybuild_popen(root, *args, **kw) -> subprocess.Popen:
    env = {**os.environ, **_BYTECODE}
    env.pop("PYBUILD_DEBUG", None)
    return subprocess.Popen([sys.executable, "-m", "builder.cli", "--root", str(root), *args], cwd=REPO, env=env,
                            **kw)


# ----------------------------------------------------------------------------------------------
# (a) reproducibility


def copy_reversed(src: Path, dst: Path) -> None:
    """Copy a tree the other way round from ``cp -a``: entries created in reverse path order (so
    children before their parents' metadata is set, other inode numbers), by Python, keeping
    types, modes, owners, xattrs, hardlinks and mtimes."""
    entries = []
    for dirpath, dirnames, filenames in os.walk(src):
        for name in dirnames + filenames:
            entries.append(os.path.relpath(os.path.join(dirpath, name), src))
    dst.mkdir()
    inodes: dict[int, Path] = {}
    for rel in sorted(entries, reverse=True):
        s, d = src / rel, dst / rel
        st = os.lstat(s)
        d.parent.mkdir(parents=True, exist_ok=True)
        if stat.S_ISDIR(st.st_mode):
            d.mkdir(exist_ok=True)
        elif stat.S_ISLNK(st.st_mode):
            os.symlink(os.readlink(s), d)
        elif stat.S_ISFIFO(st.st_mode):
            os.mkfifo(d)
        elif st.st_nlink > 1 and st.st_ino in inodes:
            os.link(inodes[st.st_ino], d)
            continue
        else:
            d.write_bytes(s.read_bytes())
            inodes[st.st_ino] = d
        os.chown(d, st.st_uid, st.st_gid, follow_symlinks=False)
        if not stat.S_ISLNK(st.st_mode):
            os.chmod(d, stat.S_IMODE(st.st_mode))
        for name in os.listxattr(s, follow_symlinks=False):
            os.setxattr(d, name, os.getxattr(s, name, follow_symlinks=False), follow_symlinks=False)
    for rel in sorted(entries, reverse=True) + ["."]:  # times last, children before parents
        st = os.lstat(src / rel)
        os.utime(dst / rel, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
    st = os.lstat(src)
    os.chmod(dst, stat.S_IMODE(st.st_mode))
    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns))


def set_mtimes(root: Path, seconds: float) -> None:
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        for name in dirnames + filenames:
            os.utime(os.path.join(dirpath, name), (seconds, seconds), follow_symlinks=False)
    os.utime(root, (seconds, seconds))


def tar_tree(root: Path, out: Path, *, reverse: bool = False) -> Path:
    """GNU tar of ``root``: sorted by name, or in reverse order (children before parents)."""
    args = ["tar", "--xattrs", "--xattrs-include=*", "--numeric-owner", "-C", str(root), "-cf", str(out)]
    if reverse:
        names = []
        for dirpath, dirnames, filenames in os.walk(root):
            names += [os.path.relpath(os.path.join(dirpath, n), root) for n in dirnames + filenames]
        listing = out.with_suffix(".list")
        listing.write_text("\n".join(sorted(names, reverse=True) + ["."]) + "\n")
        run(*args, "--no-recursion", "-T", str(listing))
    else:
        run(*args, "--sort=name", ".")
    return out


def config_of(root, image_id: str) -> dict:
    return json.loads((Path(root) / "blobs" / "sha256" / image_id[7:]).read_bytes())


def test_same_tree_made_differently_gives_the_same_image(tmp_path):
    original = make_special_rootfs(tmp_path / "original")
    first, second = tmp_path / "first", tmp_path / "second"
    run("cp", "-a", str(original), str(first))
    copy_reversed(original, second)
    # the copies are the same tree, but not the same files
    assert not diff_trees(tree_manifest(first), tree_manifest(second))
    assert {os.lstat(first / p).st_ino for p in ("data/original", "bin/suid", "etc")}.isdisjoint(
        {os.lstat(second / p).st_ino for p in ("data/original", "bin/suid", "etc")})
    first_tar, second_tar = tar_tree(first, tmp_path / "first.tar"), tar_tree(second, tmp_path / "second.tar",
                                                                              reverse=True)
    assert first_tar.read_bytes() != second_tar.read_bytes()

    # without SOURCE_DATE_EPOCH: one layer; the configs differ only in when they were created
    root = tmp_path / "root"
    a, b = (ok(pb(root, "import", str(t))).strip() for t in (first_tar, second_tar))
    ca, cb = config_of(root, a), config_of(root, b)
    assert ca["rootfs"] == cb["rootfs"]
    assert ca["created"] != cb["created"] and a != b
    for config in (ca, cb):
        del config["created"]
        del config["history"][0]["created"]
    assert ca == cb

    # other mtimes (both after the epoch) and SOURCE_DATE_EPOCH: one image ID, the original's too
    set_mtimes(first, EPOCH + 1000)
    set_mtimes(second, time.time())
    first_tar, second_tar = tar_tree(first, tmp_path / "first2.tar"), tar_tree(second, tmp_path / "second2.tar",
                                                                               reverse=True)
    env = {"SOURCE_DATE_EPOCH": str(EPOCH)}
    original_tar = tar_tree(original, tmp_path / "original.tar")
    ids = [ok(r).strip() for r in pb_all(root, *[["import", str(t)] for t in (first_tar, second_tar, original_tar)],
                                         env=env)]
    assert ids[0] == ids[1] == ids[2]
    assert config_of(root, ids[0])["created"] == "2020-09-13T12:26:40Z"
    # and another root, another day: the same ID again
    assert ok(pb(tmp_path / "root2", "import", str(second_tar), env=env)).strip() == ids[0]
    # the snapshot is the tree with its times clamped
    [doc] = json.loads(ok(pb(root, "inspect", ids[0])))
    snapshot = Path(doc["GraphDriver"]["Data"]["LowerDir"])
    assert not diff_trees(tree_manifest(original), tree_manifest(snapshot))
    assert os.lstat(snapshot / "etc" / "hello.txt").st_mtime == EPOCH


# ----------------------------------------------------------------------------------------------
# (b) corruption


def flip_byte(path: Path, offset: int) -> None:
    os.chmod(path, 0o644)
    with open(path, "r+b") as fh:
        fh.seek(offset)
        byte = fh.read(1)
        fh.seek(offset)
        fh.write(bytes([byte[0] ^ 0x55]))


def assert_save_fails(root: Path, name: str, tmp_path: Path, *needles: str) -> None:
    for fmt in ("docker-archive", "oci-archive"):
        out = tmp_path / f"out-{fmt}.tar"
        err = fails(pb(root, "save", "--format", fmt, "-o", str(out), name))
        for needle in needles:
            assert needle in err, (fmt, err)
        assert not out.exists() and not Path(f"{out}.pybuild-tmp").exists()  # no half-written archive
    err = fails(pb(root, "save", name))  # to stdout: the stream is cut short, the error is clear
    for needle in needles:
        assert needle in err


def test_corrupt_config_blob_is_named(tmp_path, busybox_tar):
    root = tmp_path / "root"
    image = ok(pb(root, "import", str(busybox_tar), "c:1")).strip()
    flip_byte(root / "blobs" / "sha256" / image[7:], 10)
    results = pb_all(root, ["inspect", "c:1"], ["image", "inspect", "--format", "{{.Id}}", "c:1"],
                     ["history", "c:1"])
    for result in results:
        err = fails(result)
        assert f"blob {image} is corrupt" in err and err.count("\n") == 1
    assert_save_fails(root, "c:1", tmp_path, f"blob {image} is corrupt")


@pytest.fixture(scope="module")
def loaded_archive(tmp_path_factory, busybox_tar) -> tuple[Path, str, str]:
    """A docker-archive of busybox (as pybuild saves it), its image ID and its layer's digest."""
    work = tmp_path_factory.mktemp("archive")
    ok(pb(work / "root", "import", str(busybox_tar), "l:1", "--change", 'CMD ["sh"]'))
    archive = work / "busybox.tar"
    ok(pb(work / "root", "save", "-o", str(archive), "l:1"))
    [doc] = json.loads(ok(pb(work / "root", "inspect", "l:1")))
    return archive, doc["Id"], doc["RootFS"]["Layers"][0]


def test_corrupt_loaded_layer_blob_is_named_and_a_reload_repairs_it(tmp_path, loaded_archive):
    archive, image, layer = loaded_archive
    root = tmp_path / "root"
    ok(pb(root, "load", "-i", str(archive)))
    blob = root / "blobs" / "sha256" / layer[7:]  # an uncompressed layer: its blob digest is its diff_id
    assert blob.stat().st_size > 1_000_000
    before = sorted(os.listdir(root / "blobs" / "sha256"))
    flip_byte(blob, blob.stat().st_size // 2)
    assert_save_fails(root, "l:1", tmp_path, f"blob {layer} is corrupt", str(blob))
    assert sorted(os.listdir(root / "blobs" / "sha256")) == before  # no compressed copy made of bad bytes
    assert os.listdir(root / "tmp") == []
    # inspect reads only the config: still fine, and says which layer it is
    assert json.loads(ok(pb(root, "inspect", "l:1")))[0]["RootFS"]["Layers"] == [layer]
    # loading the archive again replaces the bad copy; the image verifies again
    ok(pb(root, "load", "-i", str(archive)))
    assert ok(pb(root, "save", "-o", str(tmp_path / "again.tar"), "l:1")) == ""
    assert (tmp_path / "again.tar").read_bytes() == archive.read_bytes()


def test_changed_snapshot_file_is_detected_by_save(tmp_path, busybox_tar):
    root = tmp_path / "root"
    ok(pb(root, "import", str(busybox_tar), "s:1"))
    [doc] = json.loads(ok(pb(root, "inspect", "s:1")))
    diff_id = doc["RootFS"]["Layers"][0]
    snapshot = Path(doc["GraphDriver"]["Data"]["LowerDir"])
    cases = {
        "etc/passwd": lambda p: p.write_bytes(p.read_bytes().replace(b"root:x", b"ROOT:x")),   # same size
        "etc/group": lambda p: p.write_bytes(p.read_bytes() + b"wheel:x:10:\n"),              # grows
        "bin/busybox": lambda p: os.truncate(p, 1000),                                        # shrinks by 1.9 MB
    }
    for rel, change in cases.items():
        path = snapshot / rel
        data, st = path.read_bytes(), os.lstat(path)
        change(path)
        assert_save_fails(root, "s:1", tmp_path, f"layer {diff_id}", "changed on disk")
        path.write_bytes(data)  # put it back as it was, time included: save works again
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
        result = pb(root, "save", "s:1")
        assert result.returncode == 0 and len(result.stdout) > len(data), result.stderr.decode()


# ----------------------------------------------------------------------------------------------
# (c) SIGKILL in the middle of a load, and (d) two loads at once


class _LayerStream(io.RawIOBase):
    """The bytes of a layer tar holding one ``size``-byte file, made as they are read, hashed as they go."""

    def __init__(self, size: int, seed: bytes):
        member = tarfile.TarInfo("big.bin")
        member.size, member.mode, member.mtime = size, 0o644, EPOCH
        self._header = member.tobuf(format=tarfile.PAX_FORMAT)
        self._tail = b"\0" * (-size % 512) + b"\0" * 1024  # padding, end-of-archive marker
        self._block = hashlib.sha256(seed).digest() * (1 << 15)  # 1 MiB, not all zeros
        self._size = size
        self.length = len(self._header) + size + len(self._tail)
        self.pos = 0
        self.sha256 = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        p, data_end = self.pos, len(self._header) + self._size
        if p < len(self._header):
            chunk = self._header[p:p + len(buffer)]
        elif p < data_end:
            offset = (p - len(self._header)) % len(self._block)
            chunk = self._block[offset:offset + min(len(buffer), data_end - p)]
        else:
            chunk = self._tail[p - data_end:p - data_end + len(buffer)]
        buffer[:len(chunk)] = chunk
        self.pos += len(chunk)
        self.sha256.update(chunk)
        return len(chunk)


def write_docker_archive(path: Path, size: int, name: str) -> tuple[str, str]:
    """A docker 20.10-style (legacy) archive of one image whose one layer holds one ``size``-byte file,
    streamed (the layer is never held in memory). Returns (image id, diff_id)."""
    layer = _LayerStream(size, name.encode())
    layer_dir = hashlib.sha256(name.encode() + b"layer").hexdigest()
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(f"{layer_dir}/layer.tar")
        info.size = layer.length
        tar.addfile(info, io.BufferedReader(layer, 1 << 20))
        diff_id = "sha256:" + layer.sha256.hexdigest()
        config = json.dumps({"architecture": "amd64", "os": "linux", "created": "2020-09-13T12:26:40Z",
                             "config": {"Cmd": ["true"]}, "rootfs": {"type": "layers", "diff_ids": [diff_id]},
                             "history": [{"created": "2020-09-13T12:26:40Z", "created_by": "generated"}]},
                            separators=(",", ":")).encode()
        image_id = "sha256:" + hashlib.sha256(config).hexdigest()
        manifest = json.dumps([{"Config": f"{image_id[7:]}.json", "RepoTags": [name],
                                "Layers": [f"{layer_dir}/layer.tar"]}]).encode()
        for member_name, data in ((f"{image_id[7:]}.json", config), ("manifest.json", manifest)):
            info = tarfile.TarInfo(member_name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return image_id, diff_id


def wait_for_growing_temp(tmp_dir: Path, proc: subprocess.Popen, threshold: int) -> Path:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the load finished before it could be seen mid-write"
        for name in os.listdir(tmp_dir) if tmp_dir.is_dir() else ():
            path = tmp_dir / name
            try:
                if path.is_file() and path.stat().st_size >= threshold:
                    return path
            except FileNotFoundError:
                pass
        time.sleep(0.003)
    raise AssertionError("no temp file grew past the threshold")


BIG = 300_000_000


@pytest.fixture
def big_tmp(tmp_path):
    """tmp_path, emptied afterwards: pytest keeps the last runs' temp dirs, these tests write ~1 GB."""
    yield tmp_path
    shutil.rmtree(tmp_path, ignore_errors=True)


def test_sigkill_mid_load_leaves_nothing_half_loaded(big_tmp):
    tmp_path = big_tmp
    archive = tmp_path / "big.tar"
    image, diff_id = write_docker_archive(archive, BIG, "big/one:1")
    root = tmp_path / "root"
    proc = pybuild_popen(root, "load", "-i", str(archive), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    temp = wait_for_growing_temp(root / "tmp", proc, 64 << 20)
    seen = temp.stat().st_size
    while temp.stat().st_size == seen:  # still being written: the load is in the middle of the layer
        assert proc.poll() is None
        time.sleep(0.001)
    proc.send_signal(signal.SIGKILL)
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == -signal.SIGKILL and out == b""
    assert temp.exists() and temp.stat().st_size < archive.stat().st_size  # the partial copy is only in tmp/

    blobs = root / "blobs" / "sha256"
    for name in os.listdir(blobs):  # whatever was published is complete: it hashes to its name
        assert hashlib.sha256((blobs / name).read_bytes()).hexdigest() == name
    assert diff_id[7:] not in os.listdir(blobs)
    assert not (root / "layers").exists() or diff_id[7:] not in os.listdir(root / "layers")
    assert not list((root / "images").glob("*.json"))

    # what a user sees: no image, and the next command sweeps the dead load's temp files
    assert ok(pb(root, "images", "-a")) == "REPOSITORY   TAG       IMAGE ID   CREATED   SIZE\n"
    assert os.listdir(root / "tmp") == []
    assert Store(root).check() == ()

    assert ok(pb(root, "load", "-i", str(archive))) == "Loaded image: big/one:1\n"
    assert ok(pb(root, "images", "--no-trunc", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}")) == \
        f"big/one:1 {image}\n"
    saved = pybuild_popen(root, "save", "big/one:1", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    digest = hashlib.sha256()
    for chunk in iter(lambda: saved.stdout.read(1 << 20), b""):
        digest.update(chunk)
    assert saved.wait(60) == 0, saved.stderr.read().decode()
    assert os.listdir(root / "tmp") == []


def test_two_loads_at_once_leave_one_consistent_image(big_tmp):
    tmp_path = big_tmp
    archive = tmp_path / "mid.tar"
    image, diff_id = write_docker_archive(archive, 48 << 20, "conc/one:1")
    root = tmp_path / "root"
    procs = [pybuild_popen(root, "load", stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for _ in range(2)]
    barrier = threading.Barrier(2, timeout=30)
    data = archive.read_bytes()
    chunk = 1 << 20

    def feed(proc):
        try:
            for offset in range(0, len(data), chunk):
                proc.stdin.write(data[offset:offset + chunk])
                proc.stdin.flush()
                try:
                    barrier.wait()  # neither load gets ahead of the other by more than a chunk
                except threading.BrokenBarrierError:
                    pass
        finally:
            proc.stdin.close()

    feeders = [threading.Thread(target=feed, args=(p,)) for p in procs]
    for t in feeders:
        t.start()
    for t in feeders:
        t.join(120)
    results = [(p.stdout.read(), p.stderr.read(), p.wait(60))[:2] for p in procs]  # small outputs
    assert not barrier.broken  # the two loads really ran side by side, chunk by chunk
    for proc, (out, err) in zip(procs, results):
        assert proc.returncode == 0, err.decode()
        assert out == b"Loaded image: conc/one:1\n"

    assert ok(pb(root, "images", "-a", "--no-trunc", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}")) == \
        f"conc/one:1 {image}\n"
    store = Store(root)
    assert store.check() == ()
    assert store.layer_diff_ids() == [diff_id]
    assert os.listdir(root / "tmp") == []
    from builder.images.layers import ensure_snapshot

    snapshot = ensure_snapshot(store, diff_id)  # load stores blobs; the snapshot is unpacked on first use
    assert (Path(snapshot) / "big.bin").stat().st_size == 48 << 20
    saved = pybuild_popen(root, "save", "conc/one:1", stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert saved.wait(60) == 0, saved.stderr.read().decode()
