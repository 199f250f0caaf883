"""The store under real failure and real concurrency: SIGKILL mid-write, two producers racing,
and the one-way dependency rule (``cache`` never imports ``builder``)."""

from __future__ import annotations

import ast
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cache import BlobInfo, Store
from helpers import REPO

MiB = 1 << 20

# Deterministic content from a generator, identical in every process: 1 MiB chunks.
CHUNKS = r"""
import hashlib
def chunk(i):
    return hashlib.sha256(i.to_bytes(8, "little")).digest() * 32768
def chunks(n, pause=0.0):
    import time
    for i in range(n):
        yield chunk(i)
        if pause:
            time.sleep(pause)
"""
_ns: dict = {}
exec(CHUNKS, _ns)  # the same generator in this process
chunk, chunks = _ns["chunk"], _ns["chunks"]


def digest_of(n_mib: int) -> BlobInfo:
    h = hashlib.sha256()
    for c in chunks(n_mib):
        h.update(c)
    return BlobInfo("sha256:" + h.hexdigest(), n_mib * MiB)


def python(code: str, *args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", CHUNKS + code, *args], cwd=REPO, **kw)


# -- (a) SIGKILL in the middle of a large blob write -------------------------------------------

SLOW_WRITER = r"""
import sys
from cache import Store
s = Store(sys.argv[1])
# first a small, complete image: records must survive the crash intact
tar = s.put_blob(b"small layer")
s.put_layer(tar.digest, tar.size, {"tar": tar})
cfg = s.put_blob(b'{"small": true}')
s.set_tag("small:latest", s.put_image(cfg, [tar.digest]).id)
with s.blob_writer() as w:
    for c in chunks(int(sys.argv[2]), pause=0.004):
        w.write(c)
    w.commit()
print("finished", flush=True)
"""

BIG_MIB = 256
KILL_AT = 48 * MiB


def wait_for_growing_temp(tmp_dir: Path, proc: subprocess.Popen, threshold: int) -> Path:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the writer finished before it could be seen mid-write"
        for name in os.listdir(tmp_dir) if tmp_dir.is_dir() else ():
            path = tmp_dir / name
            try:
                if name.startswith("blob-") and path.stat().st_size >= threshold:
                    return path
            except FileNotFoundError:
                pass
        time.sleep(0.005)
    raise AssertionError("no temp file grew past the threshold")


@pytest.mark.parametrize("cleanup", ["open", "gc"])
def test_sigkill_mid_write_leaves_no_partial_blob(tmp_path: Path, cleanup: str):
    root = tmp_path / "root"
    early = Store(root) if cleanup == "gc" else None  # opened before the crash: GC must do the cleanup
    proc = python(SLOW_WRITER, str(root), str(BIG_MIB), stdout=subprocess.PIPE)
    temp = wait_for_growing_temp(root / "tmp", proc, KILL_AT)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=10) == -signal.SIGKILL
    assert proc.stdout.read() == b""
    proc.stdout.close()

    big = digest_of(BIG_MIB)
    blobs = root / "blobs" / "sha256"
    assert temp.exists() and temp.stat().st_size >= KILL_AT  # the partial data exists, but only in tmp/
    assert big.hex not in os.listdir(blobs)
    assert all(hashlib.sha256((blobs / n).read_bytes()).hexdigest() == n for n in os.listdir(blobs))

    if cleanup == "open":
        store = Store(root)
        assert not temp.exists()
        assert store.gc().temp_removed == 0
    else:
        store = early
        assert temp.exists()
        result = store.gc()
        assert result.temp_removed == 1 and result.bytes_freed >= KILL_AT
        assert not temp.exists()
    assert os.listdir(root / "tmp") == []
    assert store.check() == ()  # every record points at stored, verified content
    img = store.get_image(store.resolve("small:latest"))
    assert store.read_blob(img.config.digest) == b'{"small": true}'

    info = store.put_blob(chunks(BIG_MIB))
    assert info == big and store.verify_blob(big.digest) == big


# -- (b) two processes store the same large blob, layer record and snapshot at once ---------------

RACER = r"""
import json, os, sys, time
from pathlib import Path
from cache import BlobInfo, Store
root, mode, n_mib, me = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
s = Store(root)
Path(root, "ready-" + me).touch()
while not Path(root, "go").exists():
    time.sleep(0.001)
with s.lease("race " + me):
    start = time.monotonic()
    if mode == "expected":
        info = s.put_blob(chunks(n_mib, pause=0.002), expected=BlobInfo(sys.argv[5], n_mib << 20))
    else:
        info = s.put_blob(chunks(n_mib, pause=0.002))
    end = time.monotonic()
    inode = os.stat(s.blob_path(info.digest)).st_ino
    s.put_layer(info.digest, info.size, {"tar": info})
    tmp = s.prepare_snapshot(info.digest)
    for d in range(10):
        (tmp / f"dir{d}").mkdir()
        for f in range(20):
            (tmp / f"dir{d}" / f"file{f}").write_bytes(chunk(d * 20 + f)[:4096])
    s.commit_snapshot(info.digest, tmp)
    cfg = s.put_blob(b'{"raced": true}')
    img = s.put_image(cfg, [info.digest])
    s.set_tag("raced:latest", img.id)
print(json.dumps({"digest": info.digest, "image": img.id, "start": start, "end": end, "inode": inode}))
"""

RACE_MIB = 96


@pytest.mark.parametrize("mode", ["stream", "expected"])
def test_two_processes_store_the_same_content(tmp_path: Path, mode: str):
    root = tmp_path / "root"
    Store(root)
    big = digest_of(RACE_MIB)
    procs = [python(RACER, str(root), mode, str(RACE_MIB), str(n), big.digest, stdout=subprocess.PIPE)
             for n in range(2)]
    deadline = time.monotonic() + 30
    while not all((root / f"ready-{n}").exists() for n in range(2)):
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs)
        time.sleep(0.002)
    (root / "go").touch()
    outs = []
    for p in procs:
        out, _ = p.communicate(timeout=60)
        assert p.returncode == 0
        outs.append(json.loads(out))

    assert max(o["start"] for o in outs) < min(o["end"] for o in outs), "the two puts did not overlap"
    assert {o["digest"] for o in outs} == {big.digest} and len({o["image"] for o in outs}) == 1
    if mode == "expected":  # the second waited on the digest's key lock and reused the first copy
        assert outs[0]["inode"] == outs[1]["inode"]

    store = Store(root)
    cfg_digest = "sha256:" + hashlib.sha256(b'{"raced": true}').hexdigest()
    assert sorted(store.blob_digests()) == sorted([big.digest, cfg_digest])
    assert store.verify_blob(big.digest) == big
    rec = store.get_layer(big.digest)
    assert rec.snapshot and dict(rec.blobs) == {"tar": big}
    snap = store.snapshot_path(big.digest)
    assert sorted(os.listdir(snap)) == [f"dir{d}" for d in range(10)]  # one copy, no nested diff/
    assert all(sorted(os.listdir(snap / f"dir{d}")) == sorted(f"file{f}" for f in range(20)) for d in range(10))
    assert (snap / "dir3" / "file7").read_bytes() == chunk(3 * 20 + 7)[:4096]
    assert sorted(os.listdir(store.layout.layer_dir(big.digest))) == ["diff", "record.json"]
    assert store.resolve("raced:latest") == outs[0]["image"]
    assert os.listdir(store.layout.tmp) == [] and store.leases() == []
    assert store.check() == ()


# -- (c) the dependency rule ---------------------------------------------------------------------

def forbidden_imports(source: str, filename: str = "<src>") -> list[str]:
    """Every import of ``builder`` in a module of the ``cache`` package (absolute, relative or dynamic)."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level >= 2:  # from .. import x: leaves the package
                names = [f"{'.' * node.level}{node.module or ''}"]
            elif node.level == 0:
                names = [node.module or ""]
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            fname = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if fname in ("import_module", "__import__") and isinstance(node.args[0].value, str):
                names = [node.args[0].value]
        for name in names:
            if name == "builder" or name.startswith(("builder.", "..")):
                found.append(f"{filename}:{node.lineno}: {name}")
    return found


def test_the_checker_catches_every_form():
    bad = ("import builder\nimport builder.errors as e\nfrom builder.fs import x\nfrom .. import builder\n"
           "import importlib\nimportlib.import_module('builder.cli')\n__import__('builder')\n")
    assert len(forbidden_imports(bad)) == 6
    assert forbidden_imports("import os\nfrom . import errors\nfrom .errors import StoreError\n") == []


def test_cache_never_imports_builder():
    files = sorted((REPO / "cache").rglob("*.py"))
    assert len(files) >= 10
    problems = [p for f in files for p in forbidden_imports(f.read_text(), str(f.relative_to(REPO)))]
    assert problems == []
