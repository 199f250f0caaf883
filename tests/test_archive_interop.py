"""Images leave and enter pybuild through archives that other tools write and read.

(a) what ``pybuild save`` writes (docker-archive and oci-archive) passes ``skopeo inspect`` with the
    right config and layers;
(b) the oci-archive unpacks with ``umoci unpack`` to the very tree that was imported (types, modes,
    owners, sizes, contents, link targets, xattrs, hardlinks);
(c) the docker-archive loads into docker.io 20.10 with the same image ID, and runs;
(d) archives written by others load into pybuild with the same layers and trees: ``skopeo copy`` to
    oci-archive and docker-archive (from an OCI layout skopeo made of pybuild's save), and
    ``docker save`` (docker 20.10's legacy layout, ``<id>/layer.tar``);
(e) save -> load into a second root keeps image IDs, tags and trees, and saving again from there
    gives the same bytes;
(f) a docker-built image with two layers and a deletion goes docker -> pybuild -> docker with its ID,
    the whiteout kept (overlay form in the snapshot, OCI form in the saved layer).

The fixture rootfs (``treecompare.make_special_rootfs``) has a hardlink group, symlinks, setuid and
setgid files, ``user.*`` and ``security.capability`` xattrs (one of them empty), an empty directory, a
fifo, non-root owners and long and non-ASCII names; it is tarred with GNU tar and imported with
``pybuild import``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import stat
import tarfile
from pathlib import Path

import pytest

from image_fixtures import EPOCH, ok, pb, pb_all, run
from treecompare import EMPTY_XATTR, diff_trees, make_special_rootfs, tree_manifest

SPECIAL = "interop/special:1"
BUSYBOX = "interop/busybox:2"
ENV = {"SOURCE_DATE_EPOCH": str(EPOCH)}


@dataclasses.dataclass
class Saved:
    root: Path
    source: Path                     # the special rootfs directory, as imported
    ids: dict                        # name -> image id
    diff_ids: dict                   # name -> [diff_id]
    docker_archive: Path
    oci_archive: Path
    configs: dict                    # name -> config bytes as stored


@pytest.fixture(scope="module")
def saved(tmp_path_factory, busybox_tar) -> Saved:
    work = tmp_path_factory.mktemp("interop")
    source = make_special_rootfs(work / "special")
    special_tar = work / "special.tar"
    run("tar", "--xattrs", "--xattrs-include=*", "--numeric-owner", "-C", str(source), "-cf", str(special_tar), ".")
    root = work / "root"
    ids = {SPECIAL: ok(pb(root, "import", str(special_tar), SPECIAL, env=ENV)).strip(),
           BUSYBOX: ok(pb(root, "import", str(busybox_tar), BUSYBOX, "--change", 'CMD ["sh"]', "--change",
                          "ENV ORIGIN=interop", env=ENV)).strip()}  # not the same image as test_images_cli's
    docs = json.loads(ok(pb(root, "inspect", SPECIAL, BUSYBOX)))
    diff_ids = {SPECIAL: docs[0]["RootFS"]["Layers"], BUSYBOX: docs[1]["RootFS"]["Layers"]}
    docker_archive, oci_archive = work / "docker-archive.tar", work / "oci-archive.tar"
    for result in pb_all(root, ["save", "-o", str(docker_archive), SPECIAL, BUSYBOX],
                         ["save", "--format", "oci-archive", "-o", str(oci_archive), SPECIAL, BUSYBOX]):
        ok(result)
    configs = {name: (root / "blobs" / "sha256" / i[7:]).read_bytes() for name, i in ids.items()}
    return Saved(root, source, ids, diff_ids, docker_archive, oci_archive, configs)


def skopeo_json(*args: str):
    return json.loads(run("skopeo", *args).stdout)


def snapshot_tree(root: Path, name: str) -> dict:
    """The file tree of a one-layer image's snapshot (unpacked on first use: load stores blobs only)."""
    from cache import Store

    from builder.images.layers import ensure_snapshot

    [doc] = json.loads(ok(pb(root, "inspect", name)))
    lower = doc["GraphDriver"]["Data"]["LowerDir"].split(":")
    assert len(lower) == 1
    (diff_id,) = doc["RootFS"]["Layers"]
    assert ensure_snapshot(Store(root), diff_id) == lower[0]
    return tree_manifest(lower[0])


def extract(archive: Path, into: Path) -> Path:
    into.mkdir()
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="tar")
    return into


# ----------------------------------------------------------------------------------------------
# (a) skopeo inspect


@pytest.mark.parametrize("transport", ["docker-archive", "oci-archive"])
def test_skopeo_inspects_saved_archives(saved, transport):
    archive = saved.docker_archive if transport == "docker-archive" else saved.oci_archive
    for name in (SPECIAL, BUSYBOX):
        # docker-archive: selected by full name (manifest.json RepoTags); oci-archive: by the tag,
        # which pybuild writes as org.opencontainers.image.ref.name (as containerd and docker 25 do)
        ref = f"{transport}:{archive}:{name if transport == 'docker-archive' else name.split(':')[1]}"
        manifest = skopeo_json("inspect", "--raw", ref)
        assert manifest["schemaVersion"] == 2
        assert manifest["config"]["digest"] == saved.ids[name]
        assert manifest["config"]["size"] == len(saved.configs[name])
        config = skopeo_json("inspect", "--config", ref)
        assert config == json.loads(saved.configs[name])
        assert config["rootfs"]["diff_ids"] == saved.diff_ids[name]
        summary = skopeo_json("inspect", ref)
        assert (summary["Architecture"], summary["Os"]) == (config["architecture"], config["os"])
        layers = [layer["digest"] for layer in manifest["layers"]]
        assert summary["Layers"] == layers
        if transport == "docker-archive":  # uncompressed: each layer blob is its diff_id
            assert layers == saved.diff_ids[name]
            assert manifest["layers"][0]["size"] == json.loads(ok(pb(saved.root, "inspect", name)))[0]["Size"]
        else:
            assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
            assert [layer["mediaType"] for layer in manifest["layers"]] == [
                "application/vnd.oci.image.layer.v1.tar+gzip"]
            assert layers != saved.diff_ids[name]  # compressed blobs


# ----------------------------------------------------------------------------------------------
# (b) umoci unpack


def test_umoci_unpacks_the_imported_tree(saved, tmp_path):
    layout = extract(saved.oci_archive, tmp_path / "layout")
    bundle = tmp_path / "bundle"
    run("umoci", "unpack", "--image", f"{layout}:1", str(bundle))
    expected = tree_manifest(saved.source)
    # Go's archive/tar ignores PAX records with empty values, so umoci cannot restore an empty xattr
    # (pybuild writes it: see test_save_load_round_trip and the docker tests, which keep it).
    path, name = EMPTY_XATTR
    expected[path] = dataclasses.replace(expected[path], xattrs=tuple(x for x in expected[path].xattrs
                                                                       if x[0] != name))
    actual = tree_manifest(bundle / "rootfs")
    assert not diff_trees(expected, actual), "\n".join(diff_trees(expected, actual))
    # the entries that are easy to lose are all there
    assert actual["data/hardlink"].hardlink_group == actual["data/original"].hardlink_group == "data/hardlink"
    assert actual["etc/hardlink-elsewhere"].hardlink_group == "data/hardlink"
    assert actual["bin/suid"].mode == 0o4755 and actual["bin/sgid"].mode == 0o2755
    assert actual["data/fifo"].kind == "fifo" and actual["data/empty"].kind == "dir"
    assert dict(actual["bin/ping"].xattrs)["security.capability"] != b""
    config = json.loads((bundle / "config.json").read_text())
    assert config["root"]["path"] == "rootfs"


# ----------------------------------------------------------------------------------------------
# (c) docker load and run


@pytest.fixture(scope="module")
def in_docker(saved, dockerd):
    out = dockerd.out("load", "-i", str(saved.docker_archive))
    assert out == f"Loaded image: {SPECIAL}\nLoaded image: {BUSYBOX}\n"
    return dockerd


def test_docker_loads_with_same_id_and_runs(saved, in_docker):
    for name in (SPECIAL, BUSYBOX):
        [doc] = json.loads(in_docker.out("image", "inspect", name))
        assert doc["Id"] == saved.ids[name]
        assert doc["RootFS"]["Layers"] == saved.diff_ids[name]
        assert doc["RepoTags"] == [name]
    assert in_docker.out("run", "--rm", "--network", "none", BUSYBOX, "echo", "ok") == "ok\n"
    # the image's config is what docker runs: CMD ["sh"] reading a script from stdin
    assert in_docker.out("run", "--rm", "-i", "--network", "none", BUSYBOX, input=b"echo $((6*7))\n") == "42\n"


# ----------------------------------------------------------------------------------------------
# (d) archives written by skopeo and by docker


def test_skopeo_written_archives_load_with_identical_layers(saved, tmp_path):
    layout = tmp_path / "layout"
    run("skopeo", "copy", "-q", f"oci-archive:{saved.oci_archive}:1", f"oci:{layout}:special")
    oci_out, docker_out = tmp_path / "skopeo-oci.tar", tmp_path / "skopeo-docker.tar"
    run("skopeo", "copy", "-q", f"oci:{layout}:special", f"oci-archive:{oci_out}:{SPECIAL}")
    run("skopeo", "copy", "-q", f"oci:{layout}:special", f"docker-archive:{docker_out}:{SPECIAL}")
    with tarfile.open(docker_out) as tar:  # skopeo's docker-archive: the legacy layout, layer.tar symlinks
        names = tar.getnames()
        assert "manifest.json" in names and "index.json" not in names
        assert any(n.endswith("/layer.tar") and tar.getmember(n).issym() for n in names)
    expected = tree_manifest(saved.source)
    for archive in (oci_out, docker_out):
        root = tmp_path / f"root-{archive.stem}"
        assert ok(pb(root, "load", "-i", str(archive))) == f"Loaded image: {SPECIAL}\n"
        [doc] = json.loads(ok(pb(root, "inspect", SPECIAL)))
        assert doc["Id"] == saved.ids[SPECIAL]
        assert doc["RootFS"]["Layers"] == saved.diff_ids[SPECIAL]
        actual = snapshot_tree(root, SPECIAL)
        assert not diff_trees(expected, actual), "\n".join(diff_trees(expected, actual))


def test_docker_save_loads_with_identical_layers(saved, in_docker, tmp_path):
    archive = tmp_path / "docker-save.tar"
    in_docker.docker("save", "-o", str(archive), SPECIAL, BUSYBOX)
    with tarfile.open(archive) as tar:  # docker 20.10: legacy layout only
        names = tar.getnames()
        assert "manifest.json" in names and "repositories" in names and "index.json" not in names
        assert sum(n.endswith("/layer.tar") for n in names) == 2
    root = tmp_path / "root"
    out = ok(pb(root, "load", "-i", str(archive)))
    assert sorted(out.splitlines()) == sorted([f"Loaded image: {SPECIAL}", f"Loaded image: {BUSYBOX}"])
    docs = {d["RepoTags"][0]: d for d in json.loads(ok(pb(root, "inspect", SPECIAL, BUSYBOX)))}
    for name in (SPECIAL, BUSYBOX):
        assert docs[name]["Id"] == saved.ids[name]
        assert docs[name]["RootFS"]["Layers"] == saved.diff_ids[name]
    expected = tree_manifest(saved.source)
    actual = snapshot_tree(root, SPECIAL)
    assert not diff_trees(expected, actual), "\n".join(diff_trees(expected, actual))


# ----------------------------------------------------------------------------------------------
# (e) round trip


@pytest.mark.parametrize("fmt", ["docker-archive", "oci-archive"])
def test_save_load_round_trip(saved, tmp_path, fmt):
    archive = saved.docker_archive if fmt == "docker-archive" else saved.oci_archive
    root = tmp_path / "root"
    out = ok(pb(root, "load", "-i", str(archive)))
    assert out == f"Loaded image: {SPECIAL}\nLoaded image: {BUSYBOX}\n"
    listing = "{{.Repository}}:{{.Tag}} {{.ID}}"
    original, loaded, again = (pb_all(saved.root, ["images", "--format", listing])
                               + pb_all(root, ["images", "--format", listing], ["save", "--format", fmt, SPECIAL,
                                                                                BUSYBOX]))
    assert ok(loaded) == ok(original)
    docs = json.loads(ok(pb(root, "inspect", SPECIAL, BUSYBOX)))
    assert [d["Id"] for d in docs] == [saved.ids[SPECIAL], saved.ids[BUSYBOX]]
    assert [d["RepoTags"] for d in docs] == [[SPECIAL], [BUSYBOX]]
    expected = tree_manifest(saved.source)
    actual = snapshot_tree(root, SPECIAL)
    assert not diff_trees(expected, actual), "\n".join(diff_trees(expected, actual))
    assert dict(actual[EMPTY_XATTR[0]].xattrs)[EMPTY_XATTR[1]] == b""
    # saving again from the second root writes the same archive, byte for byte
    assert again.returncode == 0, again.stderr.decode()
    assert again.stdout == archive.read_bytes()


# ----------------------------------------------------------------------------------------------
# a docker-built, multi-layer image with a deletion, through pybuild and back


def test_docker_built_whiteout_round_trips_through_pybuild(in_docker, tmp_path):
    context = tmp_path / "context"
    context.mkdir()
    (context / "Dockerfile").write_text(f"FROM {BUSYBOX}\n"
                                        "RUN rm /etc/group && mkdir /d && echo hi > /d/f\n"
                                        "ENV X=1\n")
    name = "interop/built:3"
    in_docker.docker("build", "--network", "none", "-q", "-t", name, str(context))
    [before] = json.loads(in_docker.out("image", "inspect", name))
    archive = tmp_path / "docker-save.tar"
    in_docker.docker("save", "-o", str(archive), name)

    root = tmp_path / "root"
    assert ok(pb(root, "load", "-i", str(archive))) == f"Loaded image: {name}\n"
    [doc] = json.loads(ok(pb(root, "inspect", name)))
    assert doc["Id"] == before["Id"] and doc["RootFS"]["Layers"] == before["RootFS"]["Layers"]
    top = Path(doc["GraphDriver"]["Data"]["LowerDir"].split(":")[0])
    from cache import Store

    from builder.images.layers import ensure_snapshot

    assert ensure_snapshot(Store(root), doc["RootFS"]["Layers"][-1]) == str(top)  # unpacked on first use
    whiteout = os.lstat(top / "etc" / "group")  # the snapshot holds overlay's form of the deletion
    assert stat.S_ISCHR(whiteout.st_mode) and whiteout.st_rdev == 0
    assert (top / "d" / "f").read_bytes() == b"hi\n"

    again = tmp_path / "pybuild-save.tar"
    ok(pb(root, "save", "-o", str(again), name))
    with tarfile.open(again) as tar:  # ... and the saved layer its OCI form
        layer = tar.extractfile(f"blobs/sha256/{doc['RootFS']['Layers'][1][7:]}")
        with tarfile.open(fileobj=layer) as inner:
            assert "etc/.wh.group" in inner.getnames()
    in_docker.docker("rmi", name)
    assert in_docker.out("load", "-i", str(again)) == f"Loaded image: {name}\n"
    assert in_docker.out("image", "inspect", "--format", "{{.Id}}", name) == before["Id"] + "\n"
    result = in_docker.docker("run", "--rm", "--network", "none", name, "sh", "-c",
                              "cat /d/f; test -e /etc/group || echo gone; echo $X")
    assert result.stdout == b"hi\ngone\n1\n"
