"""Container start-up latency: ``pybuild run --rm busybox true`` next to podman (runc and crun) and plain
``crun run`` / ``runc run`` of the same busybox rootfs, in one run (a benchmark, not a test).

    /opt/pybuild-venv/bin/python benchmarks/bench_run.py [--runs 10]

Every side runs ``true`` in a busybox made from Debian's busybox-static (``bin/busybox-rootfs``):
pybuild from a store of its own, podman from an image imported from the same rootfs tar, crun/runc from
an OCI bundle (``crun spec``, read-only root, no terminal).  The wall time of each whole command is
measured (fork to exit), ``--runs`` times after one warm-up; figures are seconds, median (min-max).
pybuild runs both ``--network none`` (podman's flags) and its default bridge network; the latter in a
network namespace the benchmark makes, so the host's links and iptables are left alone.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PYBUILD = shutil.which("pybuild") or str(REPO / "bin" / "pybuild")


def timed(argv: list[str], runs: int, env: dict | None = None) -> list[float] | str:
    warm = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)    # warm-up
    if warm.returncode:
        return warm.stderr.decode(errors="replace").strip().splitlines()[-1][:120]
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, env=env)
        times.append(time.perf_counter() - start)
    return times


def row(name: str, times: list[float] | str) -> str:
    if isinstance(times, str):
        return f"| {name} | failed here: {times} | | 0 |"
    return f"| {name} | {statistics.median(times):.3f} | {min(times):.3f}-{max(times):.3f} | {len(times)} |"


def make_bundle(rootfs_tar: Path, where: Path) -> Path:
    bundle = where / "bundle"
    (bundle / "rootfs").mkdir(parents=True)
    subprocess.run(["tar", "-C", str(bundle / "rootfs"), "-xf", str(rootfs_tar)], check=True)
    subprocess.run(["crun", "spec"], cwd=bundle, check=True)
    spec = json.loads((bundle / "config.json").read_text())
    spec["process"]["args"] = ["true"]
    spec["process"]["terminal"] = False
    spec["root"]["readonly"] = True
    (bundle / "config.json").write_text(json.dumps(spec))
    return bundle


class OwnNetns:
    """This process (and what it starts) in a fresh network namespace with lo up."""

    def __enter__(self):
        self.name = f"pbbench-{os.getpid()}"
        subprocess.run(["ip", "netns", "add", self.name], check=True)
        self.home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        fd = os.open(f"/run/netns/{self.name}", os.O_RDONLY)
        libc = ctypes.CDLL(None, use_errno=True)
        assert libc.setns(fd, 0x40000000) == 0
        os.close(fd)
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
        self.libc = libc
        return self

    def __exit__(self, *exc):
        assert self.libc.setns(self.home, 0x40000000) == 0
        os.close(self.home)
        subprocess.run(["ip", "netns", "del", self.name], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="pbbench-run-") as tmp:
        tmp_path = Path(tmp)
        rootfs = tmp_path / "busybox-rootfs.tar"
        subprocess.run([str(REPO / "bin" / "busybox-rootfs"), str(rootfs)], check=True, stdout=subprocess.DEVNULL)
        root = tmp_path / "root"
        env = {**os.environ, "PYBUILD_ROOT": str(root)}
        subprocess.run([PYBUILD, "import", str(rootfs), "busybox:latest"], check=True, env=env,
                       stdout=subprocess.DEVNULL)
        rows.append(row("pybuild run --rm --network none", timed([PYBUILD, "run", "--rm", "--network", "none",
                                                                  "busybox", "true"], args.runs, env)))
        with OwnNetns():
            rows.append(row("pybuild run --rm (default bridge)", timed([PYBUILD, "run", "--rm", "busybox", "true"],
                                                                         args.runs, env)))
            subprocess.run([PYBUILD, "network", "prune", "-f"], env=env, stdout=subprocess.DEVNULL)
        if shutil.which("podman"):
            image = "localhost/pbbench-busybox:latest"
            subprocess.run(["podman", "import", str(rootfs), image], check=True, stdout=subprocess.DEVNULL)
            # podman asks for RLIMIT_NOFILE/NPROC above this machine's hard limits (no CAP_SYS_RESOURCE
            # here, runc then fails with EPERM): give it limits under them.
            limits = ["--ulimit=nofile=1024:1024", "--ulimit=nproc=1024:1024"]
            try:
                for runtime in ("runc", "crun"):
                    if shutil.which(runtime):
                        rows.append(row(f"podman --runtime {runtime} run --rm --network none",
                                        timed(["podman", "--runtime", runtime, "run", "--rm", "--network", "none",
                                               *limits, image, "true"], args.runs)))
            finally:
                subprocess.run(["podman", "rmi", "-f", image], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
        bundle = make_bundle(rootfs, tmp_path) if shutil.which("crun") else None
        for runtime in ("crun", "runc"):
            if bundle is not None and shutil.which(runtime):
                rows.append(row(f"{runtime} run", timed([runtime, "run", "-b", str(bundle), f"pbbench-{os.getpid()}"],
                                                        args.runs)))
    print("| what | median (s) | min-max | runs |\n|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    sys.exit(main())
