"""The remote build cache (``--cache-to`` / ``--cache-from``): CI machines share what they built.

Each "machine" is its own store root, its own HOME, and its own copy of the build context at a
different path; they share only a cache destination (an OCI layout directory or a registry). What a
user sees: the second machine reports every step CACHED and gets the very same image; after one
context file changes, exactly the steps from that COPY on run again, and the layers below it are the
first machine's. ``mode=min`` carries the final stage's chain only, ``mode=max`` every stage.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import shutil
from pathlib import Path

import pytest
from image_fixtures import fails, ok, pb, run
from registry_fixtures import skopeo_copy, unique_repo
from test_build_engine import BASE_EPOCH, built, step_states, write_context

DOCKERFILE = """\
FROM busybox
RUN echo one > /one
COPY a.txt /a.txt
RUN cat /a.txt > /a.copy
COPY b.txt /b.txt
RUN echo done > /done
"""
FILES = {"a.txt": "alpha\n", "b.txt": "beta\n"}

MULTISTAGE = """\
FROM busybox AS builder
RUN echo built > /artifact
RUN echo more > /more

FROM busybox
COPY --from=builder /artifact /artifact
RUN echo final > /final
"""


class Machine:
    """A simulated CI machine: a store, a HOME, a context directory of its own."""

    def __init__(self, base: Path, busybox_tar: Path | None = None, *, base_ref: str | None = None):
        self.base = base
        self.root = base / "store"
        self.home = base / "home"
        self.home.mkdir(parents=True)
        if busybox_tar is not None:
            ok(pb(self.root, "import", str(busybox_tar), "busybox:latest", env=self.env))
        self.base_ref = base_ref

    @property
    def env(self) -> dict:
        return {"HOME": str(self.home), "SOURCE_DATE_EPOCH": BASE_EPOCH, "PYBUILD_NO_MEMO": "0",
                "XDG_CONFIG_HOME": str(self.home / ".config"), "DOCKER_CONFIG": str(self.home / ".docker")}

    def context(self, source: Path, where: str) -> Path:
        """A copy of ``source`` at a path of this machine's own."""
        dest = self.base / where
        shutil.copytree(source, dest, symlinks=True)
        return dest

    def build(self, context: Path, *args: str):
        return pb(self.root, "build", "--progress", "plain", *args, str(context), env=self.env)

    def pb(self, *args: str):
        return pb(self.root, *args, env=self.env)

    def layers(self, image: str) -> list[str]:
        return json.loads(ok(self.pb("inspect", image)))[0]["RootFS"]["Layers"]


@pytest.fixture
def origin(tmp_path) -> Path:
    """The project as checked out: Dockerfile and files."""
    return write_context(tmp_path / "origin", DOCKERFILE, FILES)


def _states(progress: str) -> dict[str, str]:
    return step_states(progress)


# ----------------------------------------------------------------------------------------------
# type=local


def test_local_cache_second_machine_all_cached_then_exactly_from_changed_copy(tmp_path, busybox_tar, origin):
    cache = tmp_path / "shared-cache"
    first = Machine(tmp_path / "m1", busybox_tar)
    image1, progress = built(first.build(first.context(origin, "work/project"), "-t", "app:1",
                                         "--cache-to", f"type=local,dest={cache}"))
    assert set(_states(progress).values()) == {"DONE"}
    assert "exporting cache to directory" in progress
    assert (cache / "index.json").exists() and (cache / "oci-layout").exists()

    second = Machine(tmp_path / "m2", busybox_tar)
    context2 = second.context(origin, "elsewhere/deeper/checkout")
    image2, progress = built(second.build(context2, "-t", "app:1", "--cache-from", f"type=local,src={cache}"))
    assert set(_states(progress).values()) == {"CACHED"}, progress
    assert image2 == image1               # the same layers, the same history dates: the same image
    imported = [line for line in progress.splitlines() if " imported layer sha256:" in line]
    assert imported and all(f"from directory {cache}" in line for line in imported), progress

    third = Machine(tmp_path / "m3", busybox_tar)
    context3 = third.context(origin, "ci/job-17")
    (context3 / "a.txt").write_text("changed\n")
    image3, progress = built(third.build(context3, "-t", "app:1", "--cache-from", f"type=local,src={cache}"))
    assert _states(progress) == {"RUN echo one > /one": "CACHED", "COPY a.txt /a.txt": "DONE",
                                 "RUN cat /a.txt > /a.copy": "DONE", "COPY b.txt /b.txt": "DONE",
                                 "RUN echo done > /done": "DONE"}
    assert image3 != image1
    layers1, layers3 = first.layers(image1), third.layers(image3)
    assert layers3[:2] == layers1[:2]      # busybox + RUN echo one: the first machine's layers
    assert layers3[2] != layers1[2]


def test_keys_do_not_depend_on_the_machine(tmp_path, busybox_tar):
    """Store root, HOME, context path, the context files' owners and mtimes: none reaches a key.
    (``RUN true`` changes no file: an entry without a layer.)"""
    origin = write_context(tmp_path / "origin", """\
FROM busybox
ARG FLAVOUR=plain
WORKDIR /src
COPY --link . ./
RUN --mount=type=bind,target=/ctx cat /ctx/conf/app.conf > /conf.copy && echo $FLAVOUR > /flavour
ADD conf/app.conf /etc/
RUN true
""", {"conf/app.conf": "x=1\n", "notes.md": "ignored\n", ".dockerignore": "*.md\n"})
    cache = tmp_path / "cache"
    first = Machine(tmp_path / "m1", busybox_tar)
    image1, _ = built(first.build(origin, "--build-arg", "FLAVOUR=extra", "--cache-to", f"type=local,dest={cache}"))

    second = Machine(tmp_path / "m2", busybox_tar)
    context2 = second.context(origin, "some/other/depth/of/dirs")
    (context2 / "notes.md").write_text("edited, but ignored\n")
    for path in [context2, *context2.rglob("*")]:
        os.chown(path, 4321, 4321, follow_symlinks=False)
        os.utime(path, (1_000_000_000, 1_000_000_000), follow_symlinks=False)
    image2, progress = built(second.build(context2, "--build-arg", "FLAVOUR=extra",
                                          "--cache-from", f"type=local,src={cache}"))
    assert set(_states(progress).values()) == {"CACHED"}, progress
    assert image2 == image1


def test_local_cache_is_an_oci_layout_of_our_artifact(tmp_path, busybox_tar, origin):
    cache = tmp_path / "cache"
    machine = Machine(tmp_path / "m", busybox_tar)
    image, _ = built(machine.build(origin, "-t", "app:1", "--cache-to", f"type=local,dest={cache}"))
    assert json.loads((cache / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads((cache / "index.json").read_text())
    [entry] = index["manifests"]
    assert entry["mediaType"] == "application/vnd.oci.image.manifest.v1+json"

    def blob(digest: str) -> bytes:
        data = (cache / "blobs" / "sha256" / digest.split(":")[1]).read_bytes()
        assert "sha256:" + hashlib.sha256(data).hexdigest() == digest
        return data

    manifest = json.loads(blob(entry["digest"]))
    assert manifest["artifactType"] == "application/vnd.pybuild.cache.config.v1+json"
    assert manifest["config"]["mediaType"] == "application/vnd.pybuild.cache.config.v1+json"
    config = json.loads(blob(manifest["config"]["digest"]))
    entries = config["entries"]
    assert len(entries) == 5 and all(re.fullmatch(r"sha256:[0-9a-f]{64}", e["key"]) for e in entries)
    layers = machine.layers(image)
    assert [e["diff_id"] for e in entries] == layers[1:]      # every step's layer, in order
    for e in entries:
        layer = manifest["layers"][e["layer"]]
        assert layer["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip"
        assert layer["annotations"]["dev.pybuild.cache.diff_id"] == e["diff_id"]
        data = gzip.decompress(blob(layer["digest"]))
        assert "sha256:" + hashlib.sha256(data).hexdigest() == e["diff_id"]
    # nothing of the machine in it: no store root, no HOME, no context path
    text = (cache / "index.json").read_text() + json.dumps(manifest) + json.dumps(config)
    for path in (machine.root, machine.home, origin):
        assert str(path) not in text


def test_mode_min_carries_the_final_chain_and_max_every_stage(tmp_path, busybox_tar):
    origin = write_context(tmp_path / "origin", MULTISTAGE)
    builder = Machine(tmp_path / "builder", busybox_tar)
    min_cache, max_cache = tmp_path / "min", tmp_path / "max"
    built(builder.build(origin, "-t", "app:1", "--cache-to", f"type=local,dest={min_cache}",
                        "--cache-to", f"type=local,dest={max_cache},mode=max"))

    def entries(cache: Path) -> int:
        index = json.loads((cache / "index.json").read_text())
        manifest = json.loads((cache / "blobs" / "sha256" / index["manifests"][0]["digest"][7:]).read_bytes())
        config = json.loads((cache / "blobs" / "sha256" / manifest["config"]["digest"][7:]).read_bytes())
        return len(config["entries"])

    assert (entries(min_cache), entries(max_cache)) == (2, 4)

    with_min = Machine(tmp_path / "with-min", busybox_tar)
    _, progress = built(with_min.build(with_min.context(origin, "a"), "--cache-from", f"type=local,src={min_cache}"))
    assert _states(progress) == {"RUN echo built > /artifact": "DONE", "RUN echo more > /more": "DONE",
                                 "COPY --from=builder /artifact /artifact": "CACHED",
                                 "RUN echo final > /final": "CACHED"}
    with_max = Machine(tmp_path / "with-max", busybox_tar)
    _, progress = built(with_max.build(with_max.context(origin, "b"), "--cache-from", f"type=local,src={max_cache}"))
    assert set(_states(progress).values()) == {"CACHED"}, progress


def test_stage_chain_min_includes_the_stages_the_target_is_built_from(tmp_path, busybox_tar):
    origin = write_context(tmp_path / "origin", "FROM busybox AS base\nRUN echo b > /b\n"
                                                "FROM base AS mid\nRUN echo m > /m\n"
                                                "FROM busybox AS other\nRUN echo o > /o\n"
                                                "FROM mid\nCOPY --from=other /o /o\n")
    cache = tmp_path / "cache"
    first = Machine(tmp_path / "m1", busybox_tar)
    built(first.build(origin, "--cache-to", f"type=local,dest={cache}"))
    second = Machine(tmp_path / "m2", busybox_tar)
    _, progress = built(second.build(second.context(origin, "x"), "--cache-from", f"type=local,src={cache}"))
    assert _states(progress) == {"RUN echo b > /b": "CACHED", "RUN echo m > /m": "CACHED",
                                 "RUN echo o > /o": "DONE", "COPY --from=other /o /o": "CACHED"}


def test_missing_cache_is_a_warning_and_the_build_runs(tmp_path, busybox_tar, origin):
    machine = Machine(tmp_path / "m", busybox_tar)
    _, progress = built(machine.build(origin, "--cache-from", f"type=local,src={tmp_path / 'nothing-here'}"))
    assert "warning: cache import from directory" in progress and "no index.json" in progress
    assert set(_states(progress).values()) == {"DONE"}


def test_a_layer_missing_from_the_cache_runs_its_step(tmp_path, busybox_tar, origin):
    cache = tmp_path / "cache"
    first = Machine(tmp_path / "m1", busybox_tar)
    image1, _ = built(first.build(origin, "--cache-to", f"type=local,dest={cache}"))
    index = json.loads((cache / "index.json").read_text())
    manifest = json.loads((cache / "blobs" / "sha256" / index["manifests"][0]["digest"][7:]).read_bytes())
    lost = manifest["layers"][1]["digest"]          # COPY a.txt's layer
    (cache / "blobs" / "sha256" / lost[7:]).unlink()
    second = Machine(tmp_path / "m2", busybox_tar)
    image2, progress = built(second.build(second.context(origin, "c"), "--cache-from", f"type=local,src={cache}"))
    states = _states(progress)
    assert states["COPY a.txt /a.txt"] == "DONE" and states["RUN echo one > /one"] == "CACHED"
    assert states["RUN cat /a.txt > /a.copy"] == "CACHED"   # its own key is unchanged
    assert "could not be used" in progress and lost in progress
    assert second.layers(image2) == first.layers(image1)


def test_a_layer_missing_from_one_cache_is_taken_from_the_next(tmp_path, busybox_tar, origin):
    first = Machine(tmp_path / "m1", busybox_tar)
    broken, intact = tmp_path / "broken", tmp_path / "intact"
    image1, _ = built(first.build(origin, "--cache-to", f"type=local,dest={broken}",
                                  "--cache-to", f"type=local,dest={intact}"))
    index = json.loads((broken / "index.json").read_text())
    manifest = json.loads((broken / "blobs" / "sha256" / index["manifests"][0]["digest"][7:]).read_bytes())
    (broken / "blobs" / "sha256" / manifest["layers"][2]["digest"][7:]).unlink()
    second = Machine(tmp_path / "m2", busybox_tar)
    image2, progress = built(second.build(second.context(origin, "c"), "--cache-from", f"type=local,src={broken}",
                                          "--cache-from", f"type=local,src={intact}"))
    assert set(_states(progress).values()) == {"CACHED"} and image2 == image1
    assert f"from directory {broken} could not be used" in progress and "trying the next cache" in progress


def test_a_corrupt_layer_blob_is_not_used(tmp_path, busybox_tar, origin):
    cache = tmp_path / "cache"
    first = Machine(tmp_path / "m1", busybox_tar)
    built(first.build(origin, "--cache-to", f"type=local,dest={cache}"))
    index = json.loads((cache / "index.json").read_text())
    manifest = json.loads((cache / "blobs" / "sha256" / index["manifests"][0]["digest"][7:]).read_bytes())
    bad = cache / "blobs" / "sha256" / manifest["layers"][0]["digest"][7:]
    bad.write_bytes(gzip.compress(b"not the layer"))
    second = Machine(tmp_path / "m2", busybox_tar)
    _, progress = built(second.build(second.context(origin, "c"), "--cache-from", f"type=local,src={cache}"))
    assert _states(progress)["RUN echo one > /one"] == "DONE"
    assert "could not be used" in progress


def test_a_no_op_rebuild_still_exports(tmp_path, busybox_tar, origin):
    """The no-op rebuild memo answers identical builds; one with --cache-to must still export."""
    machine = Machine(tmp_path / "m", busybox_tar)
    image, _ = built(machine.build(origin, "-t", "app:1"))
    cache = tmp_path / "late-cache"
    image2, progress = built(machine.build(origin, "-t", "app:1", "--cache-to", f"type=local,dest={cache}"))
    assert image2 == image and set(_states(progress).values()) == {"CACHED"}
    assert (cache / "index.json").exists()


def test_no_cache_ignores_cache_from(tmp_path, busybox_tar, origin):
    cache = tmp_path / "cache"
    first = Machine(tmp_path / "m1", busybox_tar)
    built(first.build(origin, "--cache-to", f"type=local,dest={cache}"))
    second = Machine(tmp_path / "m2", busybox_tar)
    _, progress = built(second.build(origin, "--no-cache", "--cache-from", f"type=local,src={cache}"))
    assert set(_states(progress).values()) == {"DONE"}


def test_secrets_never_reach_the_cache(tmp_path, busybox_tar):
    secret = "hunter2-very-secret-value"
    origin = write_context(tmp_path / "origin",
                           "FROM busybox\nRUN --mount=type=secret,id=tok cat /run/secrets/tok | wc -c > /len\n")
    (tmp_path / "tok").write_text(secret)
    cache = tmp_path / "cache"
    machine = Machine(tmp_path / "m", busybox_tar)
    built(machine.build(origin, "--secret", f"id=tok,src={tmp_path / 'tok'}", "--cache-to",
                        f"type=local,dest={cache},mode=max"))
    for path in cache.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            if data[:2] == b"\x1f\x8b":
                data = gzip.decompress(data)
            assert secret.encode() not in data, path


@pytest.mark.parametrize("flag, value, message", [
    ("--cache-to", "type=s3,bucket=x", "cache type 's3' is not supported"),
    ("--cache-to", "type=local", "dest is required"),
    ("--cache-to", "type=local,dest=x,mode=all", "mode must be min or max"),
    ("--cache-to", "type=registry,ref=localhost:5000/c,colour=red", "has no attribute 'colour'"),
    ("--cache-to", "type=local,dest=x,compression=zstd", "only compression=gzip"),
    ("--cache-to", "type=local,dest=x,oci-mediatypes=false", "oci-mediatypes=false is not supported"),
    ("--cache-from", "type=local", "src is required"),
    ("--cache-from", "type=inline", "inline cache is read from an image"),
    ("--cache-from", "type=registry,ref=Bad/Name", "--cache-from type=registry,ref=Bad/Name"),
])
def test_bad_cache_specs_are_usage_errors(tmp_path, origin, flag, value, message):
    stderr = fails(pb(tmp_path / "store", "build", flag, value, str(origin)))
    assert message in stderr and flag in stderr


def test_unwritable_cache_destination_fails_the_build_unless_ignore_error(tmp_path, busybox_tar, origin):
    machine = Machine(tmp_path / "m", busybox_tar)
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    result = machine.build(origin, "--cache-to", f"type=local,dest={blocker}/cache,image-manifest=true")
    stderr = result.stderr.decode()
    assert result.returncode == 1 and "Traceback" not in stderr, stderr
    assert f"\nerror: --cache-to type=local,dest={blocker}/cache,image-manifest=true: Not a directory" in stderr
    _, progress = built(machine.build(origin, "--cache-to", f"type=local,dest={blocker}/cache,ignore-error=true"))
    assert f"warning: exporting cache to directory {blocker}/cache failed (ignore-error=true): Not a directory" \
        in progress


# ----------------------------------------------------------------------------------------------
# type=inline


def test_inline_cache_only_when_asked(tmp_path, busybox_tar, origin):
    machine = Machine(tmp_path / "m", busybox_tar)
    plain, _ = built(machine.build(origin, "-t", "plain:1"))
    inline, _ = built(machine.build(origin, "-t", "inline:1", "--cache-to", "type=inline"))
    assert inline != plain
    raw = _config(machine, plain)
    assert "pybuild.cache.v1" not in raw
    config = _config(machine, inline)
    entries = config["pybuild.cache.v1"]["entries"]
    assert [e["diff_id"] for e in entries] == config["rootfs"]["diff_ids"][1:]
    without = dict(config)
    del without["pybuild.cache.v1"]
    assert without == raw       # nothing else changes


def test_a_base_images_inline_cache_is_not_inherited(tmp_path, busybox_tar, origin):
    machine = Machine(tmp_path / "m", busybox_tar)
    built(machine.build(origin, "-t", "base-with-cache:1", "--cache-to", "type=inline"))
    child = write_context(tmp_path / "child", "FROM base-with-cache:1\nRUN echo child > /child\n")
    plain, _ = built(machine.build(child))
    assert "pybuild.cache.v1" not in _config(machine, plain)
    inline, _ = built(machine.build(child, "--cache-to", "type=inline"))
    [entry] = _config(machine, inline)["pybuild.cache.v1"]["entries"]     # the child's own step only
    assert entry["diff_id"] == _config(machine, inline)["rootfs"]["diff_ids"][-1]


def _config(machine: Machine, image_id: str) -> dict:
    blob = machine.root / "blobs" / "sha256" / image_id[7:]
    return json.loads(blob.read_bytes())


# ----------------------------------------------------------------------------------------------
# type=registry (a real registry: Debian's docker-registry on 127.0.0.1)


def test_registry_cache_shared_by_two_ci_machines(tmp_path, busybox_tar, origin, registry):
    ref = f"{registry.host}/{unique_repo('cache')}:main"
    first = Machine(tmp_path / "m1", busybox_tar)
    image1, progress = built(first.build(first.context(origin, "builds/1"), "-t", "app:1",
                                         "--cache-to", f"type=registry,ref={ref}"))
    assert set(_states(progress).values()) == {"DONE"}
    assert f"exporting cache to registry {ref} done" in progress

    second = Machine(tmp_path / "m2", busybox_tar)
    image2, progress = built(second.build(second.context(origin, "x/y/z/checkout"), "-t", "app:1",
                                          "--cache-from", f"type=registry,ref={ref}"))
    assert set(_states(progress).values()) == {"CACHED"}, progress
    assert image2 == image1

    third = Machine(tmp_path / "m3", busybox_tar)
    context3 = third.context(origin, "runner/_work/app")
    (context3 / "b.txt").write_text("beta, edited\n")
    image3, progress = built(third.build(context3, "-t", "app:1", "--cache-from", ref))   # a bare ref: registry
    assert _states(progress) == {"RUN echo one > /one": "CACHED", "COPY a.txt /a.txt": "CACHED",
                                 "RUN cat /a.txt > /a.copy": "CACHED", "COPY b.txt /b.txt": "DONE",
                                 "RUN echo done > /done": "DONE"}
    layers1, layers3 = first.layers(image1), third.layers(image3)
    assert layers3[:4] == layers1[:4] and layers3[4] != layers1[4]

    # the third machine's cache replaces the tag; a fourth machine with the edit builds nothing
    built(third.build(context3, "--cache-to", f"type=registry,ref={ref},mode=max"))
    fourth = Machine(tmp_path / "m4", busybox_tar)
    image4, progress = built(fourth.build(fourth.context(context3, "w"), "-t", "app:1", "--cache-from", ref))
    assert set(_states(progress).values()) == {"CACHED"} and image4 == image3


def test_registry_cache_artifact_is_an_oci_manifest(tmp_path, busybox_tar, origin, registry):
    repo = unique_repo("cache")
    machine = Machine(tmp_path / "m", busybox_tar)
    built(machine.build(origin, "--cache-to", f"type=registry,ref={registry.host}/{repo}:c"))
    inspected = json.loads(run("skopeo", "inspect", "--raw", "--tls-verify=false",
                               f"docker://{registry.host}/{repo}:c").stdout)
    assert inspected["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert inspected["artifactType"] == "application/vnd.pybuild.cache.config.v1+json"
    assert len(inspected["layers"]) == 5


def test_missing_registry_cache_is_a_warning(tmp_path, busybox_tar, origin, registry):
    machine = Machine(tmp_path / "m", busybox_tar)
    ref = f"{registry.host}/{unique_repo('nothing')}:cache"
    _, progress = built(machine.build(origin, "--cache-from", f"type=registry,ref={ref}"))
    assert f"warning: cache import from registry {ref} skipped" in progress
    assert set(_states(progress).values()) == {"DONE"}


def test_inline_cache_through_a_pushed_image(tmp_path, busybox_tar, origin, registry):
    """``--cache-to type=inline`` puts the entries in the image config; ``--cache-from IMAGE`` reads
    them from the pushed image and takes the image's own layers."""
    first = Machine(tmp_path / "m1", busybox_tar)
    image1, _ = built(first.build(origin, "-t", "app:1", "--cache-to", "type=inline"))
    archive = tmp_path / "app.tar"
    ok(first.pb("save", "-o", str(archive), "app:1"))
    ref = f"{registry.host}/{unique_repo('app')}:1"
    skopeo_copy(f"docker-archive:{archive}", f"docker://{ref}", tls_verify=False)

    second = Machine(tmp_path / "m2", busybox_tar)
    context2 = second.context(origin, "other/place")
    (context2 / "b.txt").write_text("changed\n")
    image2, progress = built(second.build(context2, "-t", "app:2", "--cache-from", ref))
    assert _states(progress) == {"RUN echo one > /one": "CACHED", "COPY a.txt /a.txt": "CACHED",
                                 "RUN cat /a.txt > /a.copy": "CACHED", "COPY b.txt /b.txt": "DONE",
                                 "RUN echo done > /done": "DONE"}
    assert second.layers(image2)[:4] == first.layers(image1)[:4]


def test_registry_cache_with_credentials_over_tls(tmp_path, busybox_tar, origin, tls_registry):
    """Each machine has its own login (docker config.json in its HOME) and trusts the registry's CA
    (certs.d in its HOME); a machine without credentials gets a warning and builds everything."""
    ref = f"{tls_registry.host}/{unique_repo('secure')}:cache"

    def login(machine: Machine, auth: bool = True) -> None:
        certs = machine.home / ".config" / "pybuild" / "certs.d" / tls_registry.host
        certs.mkdir(parents=True)
        shutil.copyfile(tls_registry.ca, certs / "ca.crt")
        if auth:
            (machine.home / ".docker").mkdir()
            (machine.home / ".docker" / "config.json").write_text(
                json.dumps({"auths": {tls_registry.host: {"auth": tls_registry.basic_auth()}}}))

    first = Machine(tmp_path / "m1", busybox_tar)
    login(first)
    image1, _ = built(first.build(origin, "--cache-to", f"type=registry,ref={ref}"))
    second = Machine(tmp_path / "m2", busybox_tar)
    login(second)
    image2, progress = built(second.build(second.context(origin, "c"), "--cache-from", ref))
    assert set(_states(progress).values()) == {"CACHED"} and image2 == image1
    stranger = Machine(tmp_path / "m3", busybox_tar)
    login(stranger, auth=False)
    _, progress = built(stranger.build(stranger.context(origin, "c"), "--cache-from", ref))
    assert f"warning: cache import from registry {ref} skipped" in progress
    assert set(_states(progress).values()) == {"DONE"}
    assert tls_registry.password not in progress


def test_ci_machines_with_the_base_from_the_registry_push_and_inline_cache(tmp_path, registry, registry_busybox):
    """The whole CI story: empty stores, FROM pulled from the registry, the image pushed with inline
    cache (``--push --cache-to type=inline``), the next machine building from ``--cache-from`` the
    pushed image, and a registry cache (mode=max) alongside."""
    origin = write_context(tmp_path / "origin", DOCKERFILE.replace("FROM busybox", f"FROM {registry_busybox}"),
                           FILES)
    image_ref = f"{registry.host}/{unique_repo('app')}:ci"
    cache_ref = f"{registry.host}/{unique_repo('app-cache')}:ci"
    first = Machine(tmp_path / "m1")
    image1, progress = built(first.build(first.context(origin, "w1"), "-t", image_ref, "--push",
                                         "--cache-to", "type=inline",
                                         "--cache-to", f"type=registry,ref={cache_ref},mode=max"))
    assert set(_states(progress).values()) == {"DONE"}

    second = Machine(tmp_path / "m2")
    image2, progress = built(second.build(second.context(origin, "w2"), "-t", image_ref, "--cache-from", image_ref,
                                          "--cache-to", "type=inline"))
    assert set(_states(progress).values()) == {"CACHED"}, progress
    assert image2 == image1       # inline cache included: the same config

    third = Machine(tmp_path / "m3")
    context3 = third.context(origin, "w3")
    (context3 / "a.txt").write_text("alpha two\n")
    image3, progress = built(third.build(context3, "--cache-from", f"type=registry,ref={cache_ref}"))
    assert _states(progress) == {"RUN echo one > /one": "CACHED", "COPY a.txt /a.txt": "DONE",
                                 "RUN cat /a.txt > /a.copy": "DONE", "COPY b.txt /b.txt": "DONE",
                                 "RUN echo done > /done": "DONE"}
    assert third.layers(image3)[:2] == first.layers(image1)[:2]
