"""Build times on the anchor Dockerfiles, next to buildah and docker+BuildKit when installed (a benchmark).

    /opt/pybuild-venv/bin/python benchmarks/bench_build.py [--runs 5] [--cases hello,multistage,bigfile,manyfiles]

Contexts come from ../shared/anchors/gen-contexts.sh. pybuild gets its base image by importing the busybox
rootfs (bin/busybox-rootfs) and tagging it ``localhost:5000/busybox:latest``, and ``debian:bookworm-slim`` (the
multistage case's build stage) by loading the anchor's own archive of it (/var/lib/anchor-images, else a skopeo
copy from the registry), so all three builders start from the same Debian image; buildah and docker pull both from
the anchor registry (../shared/anchors/setup.sh starts it, and dockerd on /run/anchor-docker.sock). For each
case and builder: cold build with the base present, no-op rebuild, rebuild after one changed context file;
medians (and min-max) of the runs. Also: a RUN that changes one file on top of a rootfs of 100,000 files
versus 100 files (layer capture must not depend on the rootfs size).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ANCHORS = REPO.parent / "shared" / "anchors"
PYBUILD = [sys.executable, "-m", "builder.cli"]
DOCKER = ["/usr/bin/docker", "-H", "unix:///run/anchor-docker.sock"]
CHANGED = {"hello": "greeting.txt", "multistage": "params.txt", "bigfile": "big.bin",
           "manyfiles": "files/d00/f000.txt", "apt": "app.py", "cachemount": "input.txt"}
BASES = ("localhost:5000/busybox:latest", "localhost:5000/debian:bookworm-slim")
DEBIAN = BASES[1]
ANCHOR_DEBIAN_ARCHIVE = Path("/var/lib/anchor-images/debian.docker.tar")


def run(cmd, env=None, cwd=None) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def touch_change(path: Path, n: int) -> None:
    with open(path, "ab") as fh:
        fh.write(b"%d\n" % n)


class PyBuild:
    name = "pybuild"

    def __init__(self, work: Path):
        self.work = work
        self.root = work / "pybuild-root"
        rootfs = work / "busybox.tar"
        subprocess.run([str(REPO / "bin" / "busybox-rootfs"), str(rootfs)], check=True)
        self.rootfs = rootfs
        self.debian = ANCHOR_DEBIAN_ARCHIVE
        if not self.debian.exists():
            self.debian = work / "debian.docker.tar"
            subprocess.run(["skopeo", "copy", "--quiet", "--src-tls-verify=false", f"docker://{DEBIAN}",
                            f"docker-archive:{self.debian}:{DEBIAN}"], check=True)

    def env(self):
        return dict(os.environ, PYBUILD_ROOT=str(self.root))

    def reset(self):
        shutil.rmtree(self.root, ignore_errors=True)
        subprocess.run(PYBUILD + ["import", str(self.rootfs), "localhost:5000/busybox:latest"], check=True,
                       cwd=REPO, env=self.env(), stdout=subprocess.DEVNULL)
        subprocess.run(PYBUILD + ["load", "-i", str(self.debian)], check=True, cwd=REPO, env=self.env(),
                       stdout=subprocess.DEVNULL)
        # `load` keeps layers as blobs and unpacks them on first use; buildah and docker unpack when they
        # pull, so "base present" means unpacked for pybuild too
        warm = self.work / "warm"
        warm.mkdir(exist_ok=True)
        (warm / "Dockerfile").write_text("".join(f"FROM {base}\n" for base in reversed(BASES)) +
                                         "COPY --from=0 /etc/os-release /x\n")
        subprocess.run(PYBUILD + ["build", "-q", str(warm)], check=True, cwd=REPO, env=self.env(),
                       stdout=subprocess.DEVNULL)
        subprocess.run(PYBUILD + ["builder", "prune", "-af"], check=True, cwd=REPO, env=self.env(),
                       stdout=subprocess.DEVNULL)

    def build(self, context: Path, tag: str) -> float:
        return run(PYBUILD + ["build", "-q", "-t", tag, str(context)], env=self.env(), cwd=REPO)


class Buildah:
    name = "buildah"

    def __init__(self, work: Path):
        self.root = work / "buildah-root"
        self.runroot = work / "buildah-run"

    def args(self):
        return ["buildah", "--root", str(self.root), "--runroot", str(self.runroot), "--storage-driver", "overlay"]

    def reset(self):
        subprocess.run(self.args() + ["rmi", "-a", "-f"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for base in BASES:
            subprocess.run(self.args() + ["pull", "--tls-verify=false", base], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def build(self, context: Path, tag: str) -> float:
        return run(self.args() + ["bud", "--runtime", "runc", "--tls-verify=false", "--layers", "-q", "-t", tag,
                                  str(context)])


class Docker:
    name = "docker+buildkit"

    def reset(self):
        subprocess.run(DOCKER + ["builder", "prune", "-af"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for base in BASES:
            subprocess.run(DOCKER + ["pull", base], check=True, stdout=subprocess.DEVNULL)

    def build(self, context: Path, tag: str) -> float:
        return run(DOCKER + ["build", "--network", "host", "-q", "-t", tag, str(context)],
                   env=dict(os.environ, DOCKER_BUILDKIT="1"))


def available(builder) -> bool:
    if builder is Buildah:
        return shutil.which("buildah") is not None
    if builder is Docker:
        return subprocess.run(DOCKER + ["version"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0
    return True


def summary(times: list[float]) -> str:
    return f"{statistics.median(times):7.3f} ({min(times):.3f}-{max(times):.3f})"


def bench_cases(work: Path, cases: list[str], runs: int) -> None:
    contexts = work / "contexts"
    subprocess.run([str(ANCHORS / "gen-contexts.sh"), str(contexts)], check=True, stdout=subprocess.DEVNULL)
    builders = [PyBuild(work)] + [cls(work) if cls is Buildah else cls() for cls in (Buildah, Docker) if available(cls)]
    print(f"{'case':10} {'builder':16} {'cold, base present':>26} {'no-op rebuild':>24} {'1 file changed':>24}")
    for case in cases:
        context = contexts / case
        for builder in builders:
            cold, noop, changed = [], [], []
            for i in range(runs):
                builder.reset()
                cold.append(builder.build(context, f"bench-{case}:1"))
                noop.append(builder.build(context, f"bench-{case}:1"))
                touch_change(context / CHANGED[case], i)
                changed.append(builder.build(context, f"bench-{case}:1"))
            print(f"{case:10} {builder.name:16} {summary(cold):>26} {summary(noop):>24} {summary(changed):>24}",
                  flush=True)


def bench_capture(work: Path, runs: int) -> None:
    """A RUN changing one file over a rootfs of 100 vs 100,000 files: the step's time."""
    pb = PyBuild(work)
    for count in (100, 100_000):
        tree = work / f"tree{count}"
        shutil.rmtree(tree, ignore_errors=True)
        subprocess.run(["tar", "-xf", str(pb.rootfs), "-C", str(tree.parent)] if False else ["true"])
        tree.mkdir()
        subprocess.run(["tar", "-xf", str(pb.rootfs), "-C", str(tree)], check=True)
        for i in range(count):
            d = tree / "data" / f"d{i // 1000:03d}"
            if i % 1000 == 0:
                d.mkdir(parents=True)
            (d / f"f{i:06d}").write_bytes(b"x")
        tarball = work / f"tree{count}.tar"
        subprocess.run(["tar", "-C", str(tree), "-cf", str(tarball), "."], check=True)
        shutil.rmtree(tree)
        ctx = work / f"ctx{count}"
        ctx.mkdir(exist_ok=True)
        times = []
        for i in range(runs):
            shutil.rmtree(pb.root, ignore_errors=True)
            subprocess.run(PYBUILD + ["import", str(tarball), f"big{count}:1"], check=True, cwd=REPO, env=pb.env(),
                           stdout=subprocess.DEVNULL)
            (ctx / "Dockerfile").write_text(f"FROM big{count}:1\nRUN echo {i} > /changed.txt\n")
            times.append(pb.build(ctx, f"capture{count}:1"))
        print(f"RUN changing 1 file over {count:>7} files: {summary(times)} s (whole build)")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--cases", default="hello,multistage,bigfile,manyfiles")
    parser.add_argument("--workdir", default="/var/tmp")
    parser.add_argument("--skip-capture", action="store_true")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="pybuild-build-bench-", dir=args.workdir))
    try:
        bench_cases(work, [c for c in args.cases.split(",") if c], args.runs)
        if not args.skip_capture:
            bench_capture(work, max(3, args.runs // 2))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
