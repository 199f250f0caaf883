"""Push and pull of a 1 GiB, 5-layer image (gzip) to and from a local registry, next to ``skopeo copy``
(a benchmark, not a test).

    /opt/pybuild-venv/bin/python benchmarks/bench_registry.py [--layers 5] [--layer-mib 200]

The image: ``FROM scratch`` and one COPY per layer of a file of random-ish data that gzip shrinks to
about half (runs of random bytes between runs of a repeated pattern), built by pybuild and pushed once
so its gzip blobs exist; an OCI layout with the same compressed blobs is copied from the registry by
skopeo. Both are made once and kept in ``$PYBUILD_BENCH_CACHE`` (default /var/tmp/pybuild-bench-registry)
for the next run. Then, one run each, against fresh ``docker-registry`` processes on 127.0.0.1 (the tests'
``RegistryServer``):

    pybuild push   store -> registry A          skopeo push   OCI layout -> registry B
    pybuild pull   registry A -> empty store    skopeo pull   registry B -> empty OCI layout

Neither side compresses anything (the blobs are gzip already). ``pybuild pull`` also decompresses
and hashes every layer to check it against the config's diff_id (what the store records), which
skopeo's copy to a layout does not do; neither unpacks.
Figures: seconds and MB/s of compressed image data (decimal MB).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
PYBUILD = [sys.executable, "-m", "builder.cli"]
IMAGE = "bench-registry:1"
VERSION = "1"        # bump when the image recipe changes (the cache is keyed by it)


def pybuild(root: Path, *args: str, home: Path) -> None:
    env = dict(os.environ, PYBUILD_ROOT=str(root), HOME=str(home), DOCKER_CONFIG=str(home / ".docker"),
               PYBUILD_REGISTRIES=str(home / "none.toml"), SOURCE_DATE_EPOCH="1577836800")
    subprocess.run(PYBUILD + list(args), check=True, cwd=REPO, env=env, stdout=subprocess.DEVNULL)


def skopeo(*args: str, home: Path) -> None:
    # its own HOME: no blob-info cache from earlier runs (it would try mounts from registries long gone)
    subprocess.run(["skopeo", "copy", "-q", *args], check=True, env=dict(os.environ, HOME=str(home)),
                   stdout=subprocess.DEVNULL)


def timed(fn, *args, **kwargs) -> float:
    subprocess.run(["sync"], check=False)
    start = time.perf_counter()
    fn(*args, **kwargs)
    return time.perf_counter() - start


def write_layer_file(path: Path, size: int, seed: int) -> None:
    """Random-ish data gzip halves: 64 KiB random runs alternating with 64 KiB of a repeated phrase."""
    import random

    rng = random.Random(seed)
    phrase = (b"pybuild registry benchmark %d " % seed) * 4096
    with open(path, "wb") as out:
        left = size
        while left:
            block = rng.randbytes(64 << 10) + phrase[: 64 << 10]
            out.write(block[:left])
            left -= min(left, len(block))


def prepare(cache: Path, layers: int, layer_mib: int) -> tuple[Path, Path]:
    """(pybuild store root holding IMAGE with its gzip blobs, OCI layout with the same blobs), made once."""
    from registry_fixtures import RegistryServer

    key = cache / f"v{VERSION}-{layers}x{layer_mib}"
    root, layout, home = key / "root", key / "layout", key / "home"
    if (key / "ready").exists():
        return root, layout
    shutil.rmtree(key, ignore_errors=True)
    home.mkdir(parents=True)
    context = key / "context"
    context.mkdir()
    lines = ["FROM scratch"]
    for i in range(layers):
        write_layer_file(context / f"layer{i}.bin", layer_mib << 20, seed=i)
        lines.append(f"COPY layer{i}.bin /layer{i}.bin")
    (context / "Dockerfile").write_text("\n".join(lines) + "\n")
    print(f"preparing: building a {layers} x {layer_mib} MiB image (kept in {key})", flush=True)
    pybuild(root, "build", "-q", "-t", IMAGE, str(context), home=home)
    shutil.rmtree(context)
    server = RegistryServer(key / "registry").start()
    try:
        ref = f"{server.host}/bench:1"
        pybuild(root, "tag", IMAGE, ref, home=home)
        pybuild(root, "push", "-q", ref, home=home)          # makes (and keeps) the gzip blobs
        pybuild(root, "rmi", ref, home=home)
        skopeo("--src-tls-verify=false", f"docker://{ref}", f"oci:{layout}:bench", home=home)
    finally:
        server.close()
        shutil.rmtree(key / "registry", ignore_errors=True)
    (key / "ready").touch()
    return root, layout


def compressed_size(layout: Path) -> tuple[int, int]:
    index = json.loads((layout / "index.json").read_text())
    digest = index["manifests"][0]["digest"].split(":", 1)[1]
    manifest = json.loads((layout / "blobs" / "sha256" / digest).read_text())
    return sum(layer["size"] for layer in manifest["layers"]) + manifest["config"]["size"], len(manifest["layers"])


def main(argv=None) -> int:
    from registry_fixtures import RegistryServer

    parser = argparse.ArgumentParser()
    parser.add_argument("--layers", type=int, default=5)
    parser.add_argument("--layer-mib", type=int, default=200)
    parser.add_argument("--cache", default=os.environ.get("PYBUILD_BENCH_CACHE", "/var/tmp/pybuild-bench-registry"))
    parser.add_argument("--workdir", default="/var/tmp")
    args = parser.parse_args(argv)
    root, layout = prepare(Path(args.cache), args.layers, args.layer_mib)
    size, n_layers = compressed_size(layout)

    work = Path(tempfile.mkdtemp(prefix="pybuild-bench-registry-", dir=args.workdir))
    home = work / "home"
    home.mkdir()
    a = RegistryServer(work / "registry-a").start()
    b = RegistryServer(work / "registry-b").start()
    results: list[tuple[str, float]] = []
    try:
        ref_a, ref_b = f"{a.host}/bench:1", f"{b.host}/bench:1"
        pybuild(root, "tag", IMAGE, ref_a, home=home)
        try:
            results.append(("pybuild push (store -> registry)", timed(pybuild, root, "push", "-q", ref_a, home=home)))
        finally:
            pybuild(root, "rmi", ref_a, home=home)
        results.append(("skopeo push (OCI layout -> registry)",
                        timed(skopeo, "--dest-tls-verify=false", f"oci:{layout}:bench", f"docker://{ref_b}", home=home)))
        results.append(("pybuild pull (registry -> empty store)",
                        timed(pybuild, work / "pulled", "pull", "-q", ref_a, home=home)))
        results.append(("skopeo pull (registry -> empty OCI layout)",
                        timed(skopeo, "--src-tls-verify=false", f"docker://{ref_b}", f"oci:{work / 'pulled-layout'}:bench",
                              home=home)))
    finally:
        a.close()
        b.close()
        shutil.rmtree(work, ignore_errors=True)

    print(f"image: {n_layers} layers, {args.layers * args.layer_mib} MiB of files, {size / 1e6:.0f} MB gzip; one run each")
    print(f"{'operation':44} {'s':>7} {'MB/s':>7}")
    for name, seconds in results:
        print(f"{name:44} {seconds:7.2f} {size / 1e6 / seconds:7.0f}")
    for verb in ("push", "pull"):
        mine = next(s for n, s in results if n.startswith(f"pybuild {verb}"))
        theirs = next(s for n, s in results if n.startswith(f"skopeo {verb}"))
        print(f"{verb}: pybuild / skopeo = {mine / theirs:.2f}x")
    mine = sum(s for n, s in results if n.startswith("pybuild"))
    theirs = sum(s for n, s in results if n.startswith("skopeo"))
    print(f"push + pull: pybuild {mine:.2f} s, skopeo {theirs:.2f} s = {mine / theirs:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
