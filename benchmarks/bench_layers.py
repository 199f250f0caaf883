"""Layer benchmark: how fast pybuild writes, digests, compresses and unpacks a large layer.

    python benchmarks/bench_layers.py [--size-mib 1024] [--files 20000] [--dir /var/tmp] [--keep]

1. Generates a tree of ``--files`` files totalling about ``--size-mib`` MiB under ``--dir`` (a
   realistic mix: many small text-like files from a few KiB, a few hundred of 1-16 MiB made of text
   and binaries from /usr, some directories, symlinks and hardlinks). Data is drawn from a pool of
   real files, so compression ratios are realistic (about 3:1 for gzip).
2. Times ``builder.fs.tarwriter.write_layer`` to a file with no compression, with gzip on one core,
   gzip on all cores (levels 6 and 1) and zstd (level 3, all cores); each run also computes the
   diff_id and the blob digest. Also the tar pass alone into a hasher (no file written).
3. Times ``builder.fs.unpack.unpack_layer`` of the plain, gzip and zstd blobs into fresh directories.
4. For comparison: GNU ``tar -c | gzip``, ``tar -c | pigz`` (if installed), ``tar -c | zstd -T0``,
   ``tar -x`` of the plain tar.

Figures are MB/s of *uncompressed* tar bytes, page cache warm (the tree was just written), best of
``--runs`` (default 1: a 1 GiB gzip run takes a while). Everything is deleted at the end unless --keep.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from builder.fs.compress import default_threads  # noqa: E402
from builder.fs.digests import HashingWriter  # noqa: E402
from builder.fs.tarwriter import write_layer, write_tar  # noqa: E402
from builder.fs.unpack import unpack_layer  # noqa: E402


def _pool(limit: int = 48 << 20) -> bytes:
    """Realistic content: Python sources (text) and binaries from /usr, about 3:1 for gzip."""
    parts: list[bytes] = []
    total = 0
    sources = sorted(Path("/usr/lib/python3.11").glob("**/*.py"))
    binaries = sorted(p for p in Path("/usr/bin").iterdir() if p.is_file() and not p.is_symlink())
    r = random.Random(7)
    r.shuffle(sources)
    r.shuffle(binaries)
    for text, binary in zip(sources, binaries * 20):
        for p in (text, text, binary):
            try:
                data = p.read_bytes()
            except OSError:
                continue
            parts.append(data)
            total += len(data)
        if total >= limit:
            break
    return b"".join(parts)


def generate(root: Path, size: int, files: int, seed: int = 42) -> int:
    """A tree of about ``size`` bytes in ``files`` files; returns the bytes written."""
    r = random.Random(seed)
    pool = _pool()
    big = max(1, files // 80)                  # 1.25 % of the files hold ~80 % of the bytes
    small_total = size // 5
    small_avg = max(1, small_total // (files - big))
    big_avg = max(1, (size - small_total) // big)
    written = 0
    dirs = [root]
    shallow = [root]                           # directories less than 5 levels deep
    root.mkdir(parents=True)
    for i in range(files):
        if i % 25 == 0:
            parent = r.choice(shallow)
            d = parent / f"dir{len(dirs):05d}"
            d.mkdir()
            dirs.append(d)
            if len(d.relative_to(root).parts) < 5:
                shallow.append(d)
        d = dirs[-1 - r.randrange(min(len(dirs), 10))]
        if i % 80 == 0:
            n = max(1 << 20, int(big_avg * r.uniform(0.5, 1.5)))
        else:
            n = int(r.expovariate(1 / small_avg))
        start = r.randrange(0, len(pool) - 1)
        chunk = pool[start:start + n]
        with open(d / f"file{i:06d}.dat", "wb") as f:
            while len(chunk) < n:
                chunk += pool[:n - len(chunk)]
            f.write(chunk)
        written += n
        if i % 500 == 1:
            os.symlink(f"file{i - 1:06d}.dat", d / f"link{i:06d}")
        if i % 1000 == 2:
            os.link(d / f"file{i:06d}.dat", d / f"hard{i:06d}")
    return written


def _timed(fn, runs: int, setup=None) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(runs):
        if setup is not None:
            setup()
        os.sync()                              # start each run without the last one's dirty pages
        t = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t)
    return best, result


def _line(label: str, seconds: float, tar_bytes: int, extra: str = "") -> None:
    print(f"  {label:<44} {seconds:7.2f} s  {tar_bytes / seconds / 1e6:8.1f} MB/s  {extra}", flush=True)


def _shell(cmd: str, runs: int, setup=None) -> float:
    best = float("inf")
    for _ in range(runs):
        if setup is not None:
            setup()
        os.sync()
        t = time.perf_counter()
        subprocess.run(["bash", "-o", "pipefail", "-c", cmd], check=True)
        best = min(best, time.perf_counter() - t)
    return best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--files", type=int, default=20000)
    ap.add_argument("--dir", default="/var/tmp")
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--skip-slow", action="store_true", help="skip single-core gzip and GNU tar|gzip")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="pybuild-bench-layers-", dir=args.dir))
    tree = work / "tree"
    try:
        t = time.perf_counter()
        data = generate(tree, args.size_mib << 20, args.files)
        print(f"tree: {args.files} files, {data / 2**20:.0f} MiB of file data, generated in "
              f"{time.perf_counter() - t:.1f} s under {work}; {default_threads()} cores")

        def write(name: str, **kw):
            with open(work / name, "wb") as f:
                return write_layer(tree, f, source_date_epoch=0, **kw)

        print("write (tar + diff_id + compress + digest, one pass):")
        secs, _ = _timed(lambda: write_tar(tree, HashingWriter(None), source_date_epoch=0), args.runs)
        secs_none, d = _timed(lambda: write("layer.tar"), args.runs)
        tar_bytes = d.size
        _line("tar + sha256 only (no output)", secs, tar_bytes)
        _line("none -> file", secs_none, tar_bytes)
        runs = [("gzip -6, all cores", "layer.tar.gz", dict(compression="gzip")),
                ("gzip -1, all cores", "layer-1.tar.gz", dict(compression="gzip", level=1)),
                ("zstd -3, all cores", "layer.tar.zst", dict(compression="zstd"))]
        if not args.skip_slow:
            runs.insert(0, ("gzip -6, 1 core", "layer-1core.tar.gz", dict(compression="gzip", threads=1)))
        for label, name, kw in runs:
            secs, d = _timed(lambda: write(name, **kw), args.runs)
            _line(label, secs, tar_bytes, f"ratio {d.compressed_size / d.size:.3f}")
        if (work / "layer-1core.tar.gz").exists():
            same = (work / "layer-1core.tar.gz").read_bytes() == (work / "layer.tar.gz").read_bytes()
            print(f"  gzip output identical on 1 core and on all cores: {same}")

        print("reference (GNU tar, CLIs):")
        refs = [("tar -c | zstd -3 -T0", f"tar -C {tree} -cf - . | zstd -q -3 -T0 > {work}/ref.tar.zst"),
                ("tar -c > file", f"tar -C {tree} -cf {work}/ref.tar .")]
        if not args.skip_slow:
            refs.insert(0, ("tar -c | gzip -6", f"tar -C {tree} -cf - . | gzip -6 > {work}/ref.tar.gz"))
        if shutil.which("pigz"):
            refs.insert(1, ("tar -c | pigz -6", f"tar -C {tree} -cf - . | pigz -6 > {work}/ref-pigz.tar.gz"))
        else:
            print("  (pigz not installed)")
        for label, cmd in refs:
            _line(label, _shell(cmd, args.runs), tar_bytes)

        dest = work / "out"

        def fresh_dest():
            if dest.exists():
                shutil.rmtree(dest)
            dest.mkdir()

        print("unpack (decompress + untar + diff_id, one pass; snapshot mode):")
        for label, name in (("none", "layer.tar"), ("gzip", "layer.tar.gz"), ("zstd", "layer.tar.zst")):
            def unpack(name=name):
                with open(work / name, "rb") as f:
                    return unpack_layer(f, dest)
            secs, res = _timed(unpack, args.runs, setup=fresh_dest)
            assert res.diff_id == d.diff_id, (res.diff_id, d.diff_id)
            _line(label, secs, tar_bytes)
        print("reference (GNU tar, CLIs):")
        for label, cmd in (("tar -x", f"tar -C {dest} -xf {work}/layer.tar"),
                           ("gzip -dc | tar -x", f"gzip -dc {work}/layer.tar.gz | tar -C {dest} -xf -"),
                           ("zstd -dc | tar -x", f"zstd -qdc {work}/layer.tar.zst | tar -C {dest} -xf -")):
            _line(label, _shell(cmd, args.runs, setup=fresh_dest), tar_bytes)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
