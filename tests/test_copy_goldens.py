"""COPY/ADD edge cases built for real and compared with what docker 20.10's BuildKit made of them.

The cases live in ``tests/fixtures/copy/<case>/`` (captured with ``tools/capture-goldens --fixtures
tests/fixtures/copy``); a ``prepare.sh`` makes what git cannot keep (hardlinks, a sparse file, a
2 GiB file, owners, xattrs, symlink loops) in a fresh copy of the context, here exactly as in the
capture. Each new layer's file tree (type, mode, owner, size, sha256, link target, xattrs) must be
the golden's, except where BuildKit changed since 0.8 -- ``current_buildkit`` spells out each of
those changes, and the build must follow the current behaviour. Error cases must fail with
BuildKit's message (current wording) at the Dockerfile line.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
import sys
import tarfile

import pytest
from builder.fs.compress import Prefixed
from helpers import REPO
from image_fixtures import pb
from test_build_engine import (
    BASE_INFO,
    _noop_dir,
    build,
    built,
    capture,
    layer_tree,
    new_store,
)

CASES_DIR = REPO / "tests" / "fixtures" / "copy"
CASES = sorted(p.name for p in CASES_DIR.iterdir() if (p / "golden.json").exists())


@pytest.fixture(scope="module")
def store(tmp_path_factory, busybox_tar):
    return new_store(tmp_path_factory.mktemp("copy-goldens") / "root", busybox_tar)


def saved_layer_trees(root, ref: str) -> list[list[dict]]:
    """The file tree of every layer of ``ref``, from ``pybuild save`` streamed (no archive on disk)."""
    proc = subprocess.Popen([*pb_argv(root), "save", ref], stdout=subprocess.PIPE, cwd=REPO)
    trees: dict[str, list] = {}
    manifest = None
    with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
        for member in tar:
            if member.name == "manifest.json":
                manifest = json.load(tar.extractfile(member))
            elif member.isfile() and (member.name.endswith("layer.tar") or member.name.startswith("blobs/")):
                data = tar.extractfile(member)
                head = data.read(512)
                rest = Prefixed(head, data)
                try:
                    trees[member.name] = capture.layer_tree_stream(rest)
                except tarfile.TarError:
                    continue
    assert proc.wait() == 0
    return [trees[name] for name in manifest[0]["Layers"]]


def pb_argv(root) -> list[str]:
    return [sys.executable, "-m", "builder.cli", "--root", str(root)]


# ----------------------------------------------------------------------------------------------
# what changed in BuildKit since the goldens' 0.8


def _entries(layer) -> dict:
    return {e["path"]: e for e in layer["files"]}


def current_buildkit(case: str, golden: dict) -> list[dict]:
    """The golden's layers as current BuildKit makes them (each difference explained)."""
    layers = copy.deepcopy(golden["layers"])
    if case == "copy-chmod":
        # fsutil 183e7fb (2025): directories COPY creates for the destination get the --chmod mode,
        # and an octal --chmod keeps setuid/setgid/sticky (0.8 dropped them: 4755 -> 0755).
        by_index = {layer["index"]: _entries(layer) for layer in layers}
        by_index[1]["new"]["mode"] = by_index[1]["new/deep"]["mode"] = "0700"
        by_index[2]["chmod-dir"]["mode"] = "0640"
        by_index[3]["suid.txt"]["mode"] = "4755"
        by_index[4]["both"]["mode"] = "0600"
    if case == "copy-tree":
        # docker 20.10's layer exporter (moby pkg/archive) wrote only security.capability; BuildKit's
        # own differ keeps every xattr the context sent (fsutil sends them): perms/plain.txt's
        for layer in layers:
            for entry in layer["files"]:
                if entry["path"] in ("all/perms/plain.txt", "owned/plain.txt", "owned-ids/plain.txt",
                                     "perms-slash/plain.txt"):
                    entry["xattrs"] = {"user.note": "hello"}
    if case == "add-archives":
        for layer in layers:
            files = layer["files"]
            top = files[0]["path"]
            if top == "zst":
                # moby/go-archive's DecompressStream knows zstd (docker 20.10's did not): extracted
                # like the others
                xz = next(lay for lay in layers if lay["files"][0]["path"] == "xz")
                layer["files"] = [_renamed(e, "xz", "zst") for e in xz["files"]]
            if top == "owned":
                # BuildKit 46e52f4 (2025): ADD --chown also owns what it extracts from an archive
                for entry in files:
                    entry["uid"] = entry["gid"] = 1000
    return layers


def _renamed(entry: dict, old: str, new: str) -> dict:
    entry = dict(entry)
    entry["path"] = new + entry["path"][len(old):]
    if entry["type"] == "hardlink":
        entry["link"] = new + entry["link"][len(old):]
    return entry


def current_error(text: str) -> str:
    """0.8's ``"/x" not found: not found`` is ``"/x": not found`` in current BuildKit; the loop error
    now says ``too many links`` (pybuild names the path too); host paths of the daemon are gone."""
    text = re.sub(r'^.*?failed to compute cache key: ', "failed to compute cache key: ", text)
    text = text.replace('" not found: not found', '": not found')
    text = re.sub(r"too many symlinks: (/\S+)", r'"\1": too many links', text)
    text = re.sub(r"/\S*/merged(/\S*)", r"\1", text)
    return text


# ----------------------------------------------------------------------------------------------
# the cases


@pytest.mark.parametrize("case", CASES)
def test_copy_case_like_buildkit(case, store, tmp_path):
    """The case built by pybuild gives BuildKit's layers (or its error)."""
    golden = json.loads((CASES_DIR / case / "golden.json").read_text())
    context = capture.prepare_context(CASES_DIR / case, tmp_path / "context")
    tag = f"copy-{case}:1"
    result = build(store, context, "-t", tag, "-f", str(CASES_DIR / case / "Dockerfile"))
    try:
        if "error" in golden:
            stderr = result.stderr.decode()
            assert result.returncode == 1, stderr
            assert "Traceback" not in stderr
            assert current_error(golden["error"]) in stderr, stderr
            assert re.search(r"Dockerfile:2\b", stderr), stderr        # located at the COPY line
            return
        built(result)
        mine = saved_layer_trees(store, tag)[len(BASE_INFO["diff_ids"]):]
        lower = {e["path"]: e for e in saved_layer_trees(store, "busybox:latest")[0]}
        changing = []
        for layer in current_buildkit(case, golden):
            if not all(_noop_dir(e, lower) for e in layer["files"]):
                changing.append((layer["index"], layer["files"], dict(lower)))
            lower.update({e["path"]: e for e in layer["files"]})
        assert len(mine) == len(changing), [[e["path"] for e in t] for t in mine]
        for got, (index, want, below) in zip(mine, changing):
            got_paths = {e["path"] for e in got}
            expected = [e for e in want if e["path"] in got_paths or not _noop_dir(e, below)]
            assert got == expected, f"layer {index}"
    finally:
        if context.is_relative_to(tmp_path):            # a prepared copy, never the fixture itself
            shutil.rmtree(context, ignore_errors=True)
        pb(store, "rmi", tag)


def test_layer_tree_of_bytes_still_works():
    """The capture's layer_tree (bytes) and layer_tree_stream agree (test_build_engine uses the former)."""
    import io

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("a")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"abc"))
    assert layer_tree(buf.getvalue()) == capture.layer_tree_stream(io.BytesIO(buf.getvalue()))
