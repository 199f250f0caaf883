"""Save and load of a 1 GiB image with 20,000 files, next to ``skopeo copy`` (a benchmark, not a test).

    /opt/pybuild-venv/bin/python benchmarks/bench_save_load.py [--size-mib 1024] [--files 20000] [--runs 3]

The image is made by ``pybuild import`` of a generated tree (mostly small files, a few large ones).
pybuild: ``save`` to a docker-archive (uncompressed layers) and ``load`` of it into an empty store
(which also unpacks the layer into a snapshot, ready for overlay mounts). skopeo, same bytes both
ways: ``docker-archive -> oci`` layout (its load) and ``oci -> docker-archive`` (its save); skopeo
keeps the layers uncompressed, as we do. Figures are MB/s of image data (decimal MB), best of N.
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

PYBUILD = [sys.executable, "-m", "builder.cli"]
REPO = Path(__file__).resolve().parents[1]


def make_tree(root: Path, total: int, files: int, seed: int = 7) -> int:
    rng = random.Random(seed)
    big_count = 8
    big_total = total * 3 // 4
    small_total = total - big_total
    small = max(small_total // max(files - big_count, 1), 1)
    written = 0
    block = os.urandom(1 << 20)
    for i in range(files - big_count):
        d = root / f"d{i % 200:03d}" / f"e{i % 7}"
        d.mkdir(parents=True, exist_ok=True)
        size = max(1, int(small * rng.uniform(0.5, 1.5)))
        with open(d / f"f{i:05d}.dat", "wb") as fh:
            fh.write((block * (size // len(block) + 1))[:size])
        written += size
    for i in range(big_count):
        size = big_total // big_count
        with open(root / f"big{i}.bin", "wb") as fh:
            left = size
            while left:
                chunk = block[: min(left, len(block))]
                fh.write(chunk)
                left -= len(chunk)
        written += size
    return written


def timed(cmd: list[str], env: dict | None = None) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=REPO, env=env, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--files", type=int, default=20000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workdir", default="/var/tmp")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="pybuild-bench-", dir=args.workdir))
    try:
        tree = work / "tree"
        tree.mkdir()
        data = make_tree(tree, args.size_mib << 20, args.files)
        rootfs_tar = work / "rootfs.tar"
        subprocess.run(["tar", "-C", str(tree), "-cf", str(rootfs_tar), "."], check=True)
        shutil.rmtree(tree)
        env = dict(os.environ, PYBUILD_ROOT=str(work / "root-a"))
        subprocess.run(PYBUILD + ["import", str(rootfs_tar), "bench:1"], check=True, cwd=REPO, env=env,
                       stdout=subprocess.DEVNULL)
        rootfs_tar.unlink()
        archive = work / "image.tar"
        results: dict[str, list[float]] = {"pybuild save": [], "pybuild load": [], "skopeo oci -> docker-archive": [],
                                           "skopeo docker-archive -> oci": []}
        for run in range(args.runs):
            archive.unlink(missing_ok=True)
            subprocess.run(["sync"])
            results["pybuild save"].append(timed(PYBUILD + ["save", "-o", str(archive), "bench:1"], env))
            root_b = work / "root-b"
            shutil.rmtree(root_b, ignore_errors=True)
            subprocess.run(["sync"])
            results["pybuild load"].append(timed(PYBUILD + ["load", "-i", str(archive)],
                                                 dict(os.environ, PYBUILD_ROOT=str(root_b))))
            layout = work / "layout"
            shutil.rmtree(layout, ignore_errors=True)
            subprocess.run(["sync"])
            results["skopeo docker-archive -> oci"].append(
                timed(["skopeo", "copy", "-q", f"docker-archive:{archive}", f"oci:{layout}:bench"]))
            out = work / "skopeo.tar"
            out.unlink(missing_ok=True)
            subprocess.run(["sync"])
            results["skopeo oci -> docker-archive"].append(
                timed(["skopeo", "copy", "-q", f"oci:{layout}:bench", f"docker-archive:{out}:bench:1"]))
        size = archive.stat().st_size
        print(f"image: {args.files} files, {data / 1e6:.0f} MB of file data, archive {size / 1e6:.0f} MB; best of {args.runs}")
        print(f"{'operation':34} {'best s':>8} {'median s':>9} {'MB/s':>8}")
        for name, times in results.items():
            times.sort()
            print(f"{name:34} {times[0]:8.2f} {times[len(times) // 2]:9.2f} {size / 1e6 / times[0]:8.0f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
