"""``pybuild build --output`` and ``--platform`` on real builds (busybox base, real store, real tools).

Every output type is checked by what a user gets: the directory tree or tar of the final stage's
root filesystem (layers applied in order, whiteouts honoured), image archives read back by skopeo
and by ``pybuild load``, ``-o -`` piped into ``tar -t``; the store is left as docker leaves it (only
``type=image``, and ``type=docker`` without ``dest``, tag the image); bad values fail before the
build with an error naming ``--output``; ``--platform`` takes this machine's platform only.
"""

from __future__ import annotations

import io
import json
import os
import stat
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from helpers import REPO
from image_fixtures import EPOCH, fails, ok, pb, run

# The final stage's rootfs: busybox, with /etc/group deleted (a whiteout), /home replaced by an
# opaque directory, a setuid file owned by nobody, a symlink, a hardlink, and files the last RUN
# removes again. A stage the target does not reach must leave nothing behind.
DOCKERFILE = """\
FROM busybox AS other
RUN echo other > /other-stage

FROM busybox AS final
ARG TARGETPLATFORM
ARG TARGETARCH
COPY hello.txt /data/hello.txt
RUN echo "$TARGETPLATFORM $TARGETARCH" > /platform \\
 && rm /etc/group && rm -rf /home && mkdir -p /home/new && echo new > /home/new/file \\
 && echo secret > /data/gone && mkdir /data/gonedir && echo x > /data/gonedir/x \\
 && echo suid > /data/suid && chown 65534:65534 /data/suid && chmod 4755 /data/suid \\
 && ln -s hello.txt /data/link && ln /data/hello.txt /data/hard
RUN rm /data/gone && rm -rf /data/gonedir
"""
FILES = {"hello.txt": "hello, outputs\n"}


def _native():
    sys.path.insert(0, str(REPO))
    from builder.image.platform import host_platform

    return host_platform()


NATIVE = _native()
FOREIGN = "linux/arm64" if NATIVE.architecture != "arm64" else "linux/amd64"


@pytest.fixture(scope="module")
def store(tmp_path_factory, busybox_tar) -> Path:
    root = tmp_path_factory.mktemp("outputs") / "root"
    ok(pb(root, "import", str(busybox_tar), "busybox:latest", env={"SOURCE_DATE_EPOCH": str(EPOCH)}))
    return root


@pytest.fixture(scope="module")
def context(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ctx")
    (path / "Dockerfile").write_text(DOCKERFILE)
    for name, content in FILES.items():
        (path / name).write_text(content)
    return path


def build(root: Path, context: Path, *args: str):
    return pb(root, "build", "--progress", "plain", *args, str(context))


def images(root: Path) -> set[str]:
    """The store's images as REPOSITORY:TAG (``<none>:<none>`` for untagged ones)."""
    table = ok(pb(root, "images", "-a", "--format", "{{.Repository}}:{{.Tag}}"))
    return set(table.split())


def tree_of_dir(root: Path) -> dict[str, tuple]:
    """path -> (kind, mode, uid, gid, content or link target) for everything under ``root``."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = str(path.relative_to(root))
            st = path.lstat()
            if stat.S_ISLNK(st.st_mode):
                found[rel] = ("symlink", 0, st.st_uid, st.st_gid, os.readlink(path))
            elif stat.S_ISDIR(st.st_mode):
                found[rel] = ("dir", stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, None)
            else:
                found[rel] = ("file", stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, path.read_bytes())
    return found


def tree_of_tar(data: bytes) -> dict[str, tuple]:
    """The same from a tar (hardlinks read as the file they point at)."""
    found = {}
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = tar.getmembers()
        by_name = {m.name: m for m in members}
        for m in members:
            if m.issym():
                found[m.name] = ("symlink", 0, m.uid, m.gid, m.linkname)
            elif m.isdir():
                found[m.name] = ("dir", m.mode, m.uid, m.gid, None)
            elif m.islnk():
                target = by_name[m.linkname]
                found[m.name] = ("file", m.mode, m.uid, m.gid, tar.extractfile(target).read())
            else:
                found[m.name] = ("file", m.mode, m.uid, m.gid, tar.extractfile(m).read())
    return found


def assert_final_rootfs(tree: dict[str, tuple]) -> None:
    assert tree["data/hello.txt"][4] == b"hello, outputs\n"
    assert tree["data/hard"][4] == b"hello, outputs\n"
    assert tree["data/link"][::4] == ("symlink", "hello.txt")
    assert tree["data/suid"][:4] == ("file", 0o4755, 65534, 65534)
    assert tree["home/new/file"][4] == b"new\n"
    assert tree["platform"][4] == f"{NATIVE.format()} {NATIVE.architecture}\n".encode()
    assert tree["bin/busybox"][0] == "file" and tree["bin/sh"] == ("symlink", 0, 0, 0, "busybox")
    for gone in ("etc/group", "data/gone", "data/gonedir", "other-stage"):
        assert gone not in tree, gone
    assert [p for p in tree if p.startswith("home/")] == ["home/new", "home/new/file"]


# ----------------------------------------------------------------------------------------------
# type=local / type=tar


def test_local_output_is_the_final_rootfs_and_tags_nothing(store, context, tmp_path):
    before = images(store)
    out = tmp_path / "out"
    result = build(store, context, "-t", "outputs:local", "-o", f"type=local,dest={out}")
    ok(result)
    assert f"exporting to directory {out} done" in result.stderr.decode()
    assert "writing image" not in result.stderr.decode()
    tree = tree_of_dir(out)
    assert_final_rootfs(tree)
    assert os.stat(out / "data/hard").st_ino == os.stat(out / "data/hello.txt").st_ino
    assert stat.S_IMODE(out.stat().st_mode) == 0o755
    # as docker: -t names nothing when the output is not the image store, and no untagged image is left
    assert images(store) == before
    fails(pb(store, "image", "inspect", "outputs:local"))
    assert sorted(os.listdir(tmp_path)) == ["out"]  # no temp directory left beside it


def test_dir_shorthand_and_merging_into_an_existing_directory(store, context, tmp_path):
    out = tmp_path / "existing"
    (out / "data").mkdir(parents=True)
    (out / "keep.txt").write_text("mine")
    (out / "data" / "hello.txt").write_text("old")
    (out / "platform").mkdir()  # a directory where the image has a file: replaced
    ok(build(store, context, "-o", str(out)))
    tree = tree_of_dir(out)
    assert_final_rootfs(tree)
    assert tree["keep.txt"][4] == b"mine"  # BuildKit's local exporter overwrites, it does not empty dest


def test_tar_output_holds_the_same_files(store, context, tmp_path):
    local = tmp_path / "dir"
    ok(build(store, context, "-o", f"type=local,dest={local}"))
    out = tmp_path / "rootfs.tar"
    ok(build(store, context, "-o", f"type=tar,dest={out}"))
    data = out.read_bytes()
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        names = tar.getnames()
        members = {m.name: m for m in tar.getmembers()}
    assert names == sorted(names) and not any(n.startswith(("./", "/")) for n in names)
    assert members["data/hard"].islnk() or members["data/hello.txt"].islnk()
    tree = tree_of_tar(data)
    assert_final_rootfs(tree)
    assert set(tree) == set(tree_of_dir(local))
    # GNU tar reads it too
    listing = run("tar", "-tvf", str(out)).stdout.decode()
    assert "data/suid" in listing and "-rwsr-xr-x 65534/65534" in listing


def test_output_dash_writes_the_tar_to_stdout(store, context):
    argv = [sys.executable, "-m", "builder.cli", "--root", str(store), "build", "--progress", "plain", "-q",
            "-t", "outputs:stdout", "-o", "-", str(context)]
    producer = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    listing = subprocess.run(["tar", "-t"], stdin=producer.stdout, capture_output=True, timeout=120, check=False)
    producer.stdout.close()
    stderr = producer.stderr.read().decode()
    assert producer.wait(120) == 0, stderr
    assert listing.returncode == 0, listing.stderr.decode()
    names = listing.stdout.decode().split("\n")
    assert "data/hello.txt" in names and "bin/busybox" in names and "etc/group" not in names
    assert "exporting to rootfs tarball on stdout done" not in stderr  # -q: nothing but the tar
    # with -q, stdout carries the tar only (no image ID after it)
    raw = subprocess.run(argv, cwd=REPO, capture_output=True, timeout=120, check=False).stdout
    assert b"sha256:" not in raw[-4096:] and raw.endswith(b"\0" * 1024)


def test_tar_without_dest_goes_to_stdout(store, context):
    result = build(store, context, "-o", "type=tar")
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    assert "data/hello.txt" in tree_of_tar(result.stdout)


def test_a_reader_that_stops_early_is_not_a_traceback(store, context):
    argv = [sys.executable, "-m", "builder.cli", "--root", str(store), "build", "--progress", "quiet",
            "-o", "-", str(context)]
    producer = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    producer.stdout.read(1024)
    producer.stdout.close()
    stderr = producer.stderr.read().decode()
    assert producer.wait(120) == 1
    assert stderr.startswith("error: --output -: ") and "Traceback" not in stderr and "Exception" not in stderr


def test_target_exports_only_that_stages_rootfs(store, context, tmp_path):
    out = tmp_path / "other"
    ok(build(store, context, "--target", "other", "-o", str(out)))
    tree = tree_of_dir(out)
    assert tree["other-stage"][4] == b"other\n"
    assert "data" not in tree and "platform" not in tree
    assert "etc/group" in tree  # busybox's, untouched by the final stage


# ----------------------------------------------------------------------------------------------
# type=oci / type=docker / type=image


def _skopeo(transport: str, path: Path, *extra: str) -> dict:
    return json.loads(run("skopeo", "inspect", *extra, f"{transport}:{path}").stdout)


def test_oci_archive(store, context, tmp_path):
    out = tmp_path / "image.oci.tar"
    before = images(store)
    result = build(store, context, "-t", "outputs:oci", "-o", f"type=oci,dest={out}")
    ok(result)
    assert images(store) == before
    inspected = _skopeo("oci-archive", out)
    assert len(inspected["Layers"]) == 4  # busybox, COPY, two RUNs
    config = _skopeo("oci-archive", out, "--config")
    assert (config["os"], config["architecture"]) == ("linux", NATIVE.architecture)
    with tarfile.open(out) as tar:
        index = json.load(tar.extractfile("index.json"))
    annotations = index["manifests"][0]["annotations"]
    assert annotations["io.containerd.image.name"] == "docker.io/library/outputs:oci"
    assert annotations["org.opencontainers.image.ref.name"] == "oci"
    # loads back, tagged, with the contents the build made
    other = tmp_path / "other-store"
    assert ok(pb(other, "load", "-i", str(out))).strip() == "Loaded image: outputs:oci"
    exported = tmp_path / "rootfs"
    ok(pb(other, "build", "--progress", "quiet", "-o", str(exported), str(_from_context(tmp_path, "outputs:oci"))))
    assert_final_rootfs(tree_of_dir(exported))


def _from_context(tmp_path: Path, image: str) -> Path:
    path = tmp_path / f"from-{image.replace(':', '-')}"
    path.mkdir()
    (path / "Dockerfile").write_text(f"FROM {image}\n")
    return path


def test_docker_archive_names_from_tags_and_name_attribute(store, context, tmp_path):
    out = tmp_path / "image.docker.tar"
    ok(build(store, context, "-t", "outputs:docker", "-o", f'type=docker,dest={out},"name=extra/one:1,two"'))
    with tarfile.open(out) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))
    assert manifest[0]["RepoTags"] == ["outputs:docker", "extra/one:1", "two:latest"]
    inspected = _skopeo("docker-archive", out)
    assert len(inspected["Layers"]) == 4
    fails(pb(store, "image", "inspect", "outputs:docker"))
    other = tmp_path / "other-store"
    loaded = ok(pb(other, "load", "-i", str(out))).splitlines()
    assert loaded == ["Loaded image: outputs:docker", "Loaded image: extra/one:1", "Loaded image: two:latest"]


def test_docker_without_dest_and_image_load_into_the_store(store, context):
    ok(build(store, context, "-t", "outputs:loaded", "-o", "type=docker"))
    loaded = json.loads(ok(pb(store, "image", "inspect", "outputs:loaded")))[0]["Id"]
    result = build(store, context, "-t", "outputs:image", "-o", "type=image,name=outputs:named,push=false")
    ok(result)
    stderr = result.stderr.decode()
    assert "naming to docker.io/library/outputs:image done" in stderr
    assert "naming to docker.io/library/outputs:named done" in stderr
    for name in ("outputs:image", "outputs:named"):
        assert json.loads(ok(pb(store, "image", "inspect", name)))[0]["Id"] == loaded


def test_several_outputs_at_once(store, context, tmp_path):
    out_dir, out_tar = tmp_path / "dir", tmp_path / "img.tar"
    ok(build(store, context, "-t", "outputs:several", "-o", str(out_dir), "-o", f"type=docker,dest={out_tar}",
             "-o", "type=image"))
    assert_final_rootfs(tree_of_dir(out_dir))
    with tarfile.open(out_tar) as tar:
        assert json.load(tar.extractfile("manifest.json"))[0]["RepoTags"] == ["outputs:several"]
    ok(pb(store, "image", "inspect", "outputs:several"))


def test_quiet_prints_the_image_id_for_image_outputs_only(store, context, tmp_path):
    image_id = ok(build(store, context, "-q", "-o", f"type=docker,dest={tmp_path / 'x.tar'}")).strip()
    assert image_id.startswith("sha256:") and len(image_id) == 71
    assert ok(build(store, context, "-q", "-o", str(tmp_path / "d"))) == ""


# ----------------------------------------------------------------------------------------------
# bad values and failures


@pytest.mark.parametrize("value, message", [
    ("type=foo", "--output type=foo: unknown output type 'foo' (use one of image, docker, oci, local, tar)"),
    ("type=local", "--output type=local: dest is required for local exporter"),
    ("type=local,dest=-", "--output type=local,dest=-: dest cannot be stdout for local exporter"),
    ("type=local,dest=x,mode=delete",
     "--output type=local,dest=x,mode=delete: type=local has no attribute 'mode' (it takes type, dest)"),
    ("type=image,dest=x",
     "--output type=image,dest=x: type=image has no attribute 'dest' (it takes type, name, push)"),
    ("type=tar,compression=gzip", "type=tar has no attribute 'compression'"),
    ("dest=x,name=y", "--output dest=x,name=y: type is required for output"),
    ("type=local,dest", "--output type=local,dest: invalid value 'dest' (expected key=value)"),
    ("type=image,push=maybe", "push='maybe' is not a boolean"),
    ("type=registry", "--output type=registry: tag is needed when pushing to registry"),
    ("type=oci,dest=x.tar,tar=false", "tar=false (an OCI layout directory) is not supported yet"),
    ("type=oci,dest=x.tar,tar=maybe", "tar='maybe' is not a boolean"),
])
def test_bad_output_values(store, context, tmp_path, value, message):
    before = images(store)
    stderr = fails(pb(store, "build", "--progress", "quiet", "-o", value, str(context)))
    assert message in stderr, stderr
    assert stderr.startswith("error: --output")
    assert images(store) == before


def test_destinations_of_the_wrong_kind(store, context, tmp_path):
    a_file, a_dir = tmp_path / "file", tmp_path / "dir"
    a_file.write_text("x")
    a_dir.mkdir()
    stderr = fails(build(store, context, "-o", f"type=local,dest={a_file}"))
    assert f"destination directory {a_file} is a file" in stderr
    stderr = fails(build(store, context, "-o", f"type=tar,dest={a_dir}"))
    assert f"destination file {a_dir} is a directory" in stderr
    stderr = fails(build(store, context, "-o", "-", "-o", "type=oci"))
    assert "error: --output: multiple outputs configured to write to stdout" in stderr
    stderr = fails(build(store, context, "--iidfile", str(tmp_path / "iid"), "-o", str(tmp_path / "out")))
    assert "local and tar exporters are incompatible with image ID file" in stderr
    assert sorted(os.listdir(tmp_path)) == ["dir", "file"]


def test_stdout_on_a_terminal_is_refused(store, context):
    master, slave = os.openpty()
    try:
        argv = [sys.executable, "-m", "builder.cli", "--root", str(store), "build", "--progress", "quiet",
                "-o", "-", str(context)]
        result = subprocess.run(argv, cwd=REPO, stdout=slave, stderr=subprocess.PIPE, timeout=120, check=False)
    finally:
        os.close(slave)
        os.close(master)
    assert result.returncode == 1
    assert result.stderr.decode() == ("error: --output -: dest file is required for tar exporter. "
                                      "refusing to write to console\n")


def test_a_failed_build_leaves_no_output_behind(store, tmp_path):
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text("FROM busybox\nRUN echo partial > /x && exit 3\n")
    dest = tmp_path / "dest"
    dest.mkdir()
    for value in (f"type=local,dest={dest / 'dir'}", f"type=tar,dest={dest / 'r.tar'}",
                  f"type=oci,dest={dest / 'o.tar'}", f"type=docker,dest={dest / 'd.tar'}"):
        stderr = fails(pb(store, "build", "--progress", "quiet", "-o", value, str(context)))
        assert "exit code 3" in stderr
    assert os.listdir(dest) == []


def test_an_unwritable_destination_fails_cleanly(store, context, tmp_path):
    # a file where dest's parent directory should be: the export cannot start, nothing appears
    parent = tmp_path / "ro"
    parent.mkdir()
    (parent / "dest").write_text("a file in the way of a directory")
    stderr = fails(pb(store, "build", "--progress", "quiet", "-o", f"type=local,dest={parent / 'dest' / 'sub'}",
                      str(context)))
    assert stderr.startswith(f"error: --output type=local,dest={parent / 'dest' / 'sub'}: cannot write "), stderr
    assert sorted(os.listdir(parent)) == ["dest"]


# ----------------------------------------------------------------------------------------------
# --platform


@pytest.mark.parametrize("value", [NATIVE.format(), f"{NATIVE.os}/x86_64" if NATIVE.architecture == "amd64"
                                   else NATIVE.format(), NATIVE.architecture,
                                   f"{NATIVE.format()},{NATIVE.format()}"])
def test_native_platform_accepted(store, context, tmp_path, value):
    out = tmp_path / "out"
    ok(build(store, context, "--platform", value, "-o", str(out)))
    assert (out / "platform").read_text() == f"{NATIVE.format()} {NATIVE.architecture}\n"


def test_platform_can_be_repeated(store, context, tmp_path):
    ok(build(store, context, "--platform", NATIVE.format(), "--platform", NATIVE.format(), "-o", str(tmp_path / "o")))


@pytest.mark.parametrize("value, message", [
    (FOREIGN, (f"error: --platform {FOREIGN}: this machine runs {NATIVE.format()}; building for {FOREIGN} needs "
               "emulation, which pybuild does not support yet\n")),
    (f"{NATIVE.format()},{FOREIGN}", (f"error: --platform {FOREIGN}: this machine runs {NATIVE.format()}; building "
                                      f"for {FOREIGN} (one of 2 platforms asked for) needs emulation, which pybuild "
                                      "does not support yet\n")),
    ("windows/amd64", "building for windows/amd64 needs emulation, which pybuild does not support yet"),
    ("linux/a/b/c", 'error: --platform: "linux/a/b/c": cannot parse platform specifier: invalid argument\n'),
])
def test_other_platforms_refused(store, context, value, message):
    before = images(store)
    stderr = fails(pb(store, "build", "--progress", "quiet", "--platform", value, str(context)))
    assert message in stderr, stderr
    assert images(store) == before
