"""The build engine on real builds: ``pybuild build`` run as a user runs it, in temporary stores.

What the build engine issue asks the MVP to show, except the RUN failure / interrupt / isolation
part (``test_build_engine_run.py``, which reuses the helpers here):

* every golden case of ``tests/fixtures/build/`` (captured from docker 20.10's BuildKit) built for
  real: config, history and the file trees of the new layers against the golden, with the known
  differences spelled out in ``test_golden_case`` (the planner alone is checked in
  ``test_build_config.py``);
* build cache: a second build is all CACHED, a changed context file rebuilds exactly from its COPY
  on, ``--no-cache`` rebuilds everything;
* the same Dockerfile, context and SOURCE_DATE_EPOCH in two empty stores give the same image digest;
* COPY basics, WORKDIR, USER.

Each store gets the busybox base the goldens were captured on (``bin/busybox-rootfs`` imported with
SOURCE_DATE_EPOCH=1577836800, no ``--change``), so its image ID is the one in
``tests/fixtures/build/_base/busybox.json``.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import io
import json
import os
import re
import shutil
import tarfile
from pathlib import Path

import pytest

from helpers import REPO
from image_fixtures import fails, ok, pb

GOLDENS = REPO / "tests" / "fixtures" / "build"
BASE_INFO = json.loads((GOLDENS / "_base" / "busybox.json").read_text())
BASE_EPOCH = "1577836800"
CASES = sorted(p.name for p in GOLDENS.iterdir() if (p / "golden.json").exists())


# ----------------------------------------------------------------------------------------------
# helpers (also used by test_build_engine_run.py)


def new_store(path: Path, busybox_tar: Path) -> Path:
    """An empty store at ``path`` holding only busybox:latest, the goldens' base."""
    out = ok(pb(path, "import", str(busybox_tar), "busybox:latest", env={"SOURCE_DATE_EPOCH": BASE_EPOCH}))
    assert out.strip() == BASE_INFO["image_id"]
    return path


def build(root: Path, context: Path, *args: str, env: dict | None = None):
    """``pybuild --root ROOT build --progress plain ARGS... CONTEXT`` (the CompletedProcess)."""
    return pb(root, "build", "--progress", "plain", *args, str(context), env=env)


def built(result) -> tuple[str, str]:
    """(image ID, progress text) of a build that must succeed."""
    ok(result)
    stderr = result.stderr.decode()
    found = re.findall(r"^writing image (sha256:[0-9a-f]{64}) done$", stderr, re.M)
    assert len(found) == 1, stderr
    return found[0], stderr


def step_states(progress: str) -> dict[str, str]:
    """Step text -> CACHED or DONE, from ``--progress plain`` output (every step is reported once)."""
    names = dict(re.findall(r"^#(\d+) \[[^\]]+\] (.*)$", progress, re.M))
    states = {}
    for number, state in re.findall(r"^#(\d+) (CACHED|DONE) ?", progress, re.M):
        assert names[number] not in states, progress
        states[names[number]] = state
    assert set(states) == set(names.values()), progress
    return states


def write_context(path: Path, dockerfile: str, files: dict[str, str | bytes] | None = None) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "Dockerfile").write_text(dockerfile)
    for name, content in (files or {}).items():
        target = path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def saved_images(root: Path, refs, out: Path) -> dict[str, dict]:
    """``pybuild save REFS`` read back: ref -> {"config": dict, "raw": bytes, "layers": [bytes]}."""
    ok(pb(root, "save", "-o", str(out), *refs))
    images = {}
    with tarfile.open(out) as tar:
        for entry in json.load(tar.extractfile("manifest.json")):
            raw = tar.extractfile(entry["Config"]).read()
            image = {"config": json.loads(raw), "raw": raw,
                     "layers": [tar.extractfile(name).read() for name in entry["Layers"]]}
            for tag in entry.get("RepoTags") or ():
                images[tag] = image
    return images


def layer_text(image: dict, path: str) -> str:
    """The content of ``path`` as the image's top-most layer holding it has it (a saved_images entry)."""
    for data in reversed(image["layers"]):
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            try:
                return tar.extractfile(tar.getmember(path)).read().decode()
            except KeyError:
                continue
    raise KeyError(path)


def _load_capture():
    """tools/capture-goldens as a module: the file trees here are normalised by the capture's own code."""
    path = REPO / "tools" / "capture-goldens"
    loader = importlib.machinery.SourceFileLoader("capture_goldens", str(path))
    spec = importlib.util.spec_from_loader("capture_goldens", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


capture = _load_capture()
layer_tree = capture.layer_tree


def image_tree(image: dict) -> dict[str, dict]:
    """The merged file tree of a saved image (path -> normalised entry; whiteouts applied)."""
    tree: dict[str, dict] = {}
    for data in image["layers"]:
        for entry in layer_tree(data):
            head, _, name = entry["path"].rpartition("/")
            if name.startswith(".wh."):
                gone = (head + "/" if head else "") + name[4:]
                for path in [p for p in tree if p == gone or p.startswith(gone + "/")]:
                    del tree[path]
                continue
            tree[entry["path"]] = entry
    return tree


@pytest.fixture(scope="module")
def store(tmp_path_factory, busybox_tar) -> Path:
    """One store for the tests of a module that do not care what else is in it."""
    return new_store(tmp_path_factory.mktemp("engine") / "root", busybox_tar)


# ----------------------------------------------------------------------------------------------
# every golden case, built for real


# History texts BuildKit 0.8 (the goldens) and the current BuildKit (what `pybuild build` writes)
# spell differently; see builder/build/history.py and test_build_config.test_current_buildkit_texts.
STYLE_KEYWORDS = ("ARG", "HEALTHCHECK", "EXPOSE", "RUN", "COPY", "ADD")


@pytest.fixture(scope="module")
def golden_builds(tmp_path_factory, busybox_tar) -> dict:
    """Every golden case built into one store, then saved in one archive: case -> saved image."""
    work = tmp_path_factory.mktemp("goldens")
    root = new_store(work / "root", busybox_tar)
    empty = work / "empty-context"
    empty.mkdir()
    for case in CASES:
        g = json.loads((GOLDENS / case / "golden.json").read_text())
        args = ["-t", f"golden-{case}:latest", "-f", str(GOLDENS / case / "Dockerfile")]
        for key, value in sorted(g["build_args"].items()):
            args += ["--build-arg", f"{key}={value}"]
        if g["target"]:
            args += ["--target", g["target"]]
        context = GOLDENS / case / "context"
        built(build(root, context if context.is_dir() else empty, *args))
    refs = [f"golden-{case}:latest" for case in CASES]
    images = saved_images(root, ["busybox:latest"] + refs, work / "all.tar")
    for case, inspect in zip(CASES, json.loads(ok(pb(root, "inspect", *refs)))):
        images[f"golden-{case}:latest"]["inspect"] = inspect
    return {"base": images["busybox:latest"], **{case: images[f"golden-{case}:latest"] for case in CASES}}


def _noop_dir(entry: dict, lower: dict) -> bool:
    """A directory entry that changes nothing in the merged tree (same type, mode and owner below)."""
    below = lower.get(entry["path"])
    return entry["type"] == "dir" and below is not None and all(
        below[k] == entry[k] for k in ("type", "mode", "uid", "gid"))


@pytest.mark.parametrize("case", CASES)
def test_golden_case(case, golden_builds):
    """Config, history and new layers of a real build against what BuildKit 0.8 made of the case.

    Known differences, and how they are compared:

    * history texts: where the planner's BuildKit-0.8 and current-BuildKit texts differ (ARG values,
      EXPOSE, HEALTHCHECK, RUN arg prefix of a stage FROM a stage, COPY/ADD flags), the build must
      write the current text; everywhere else exactly the golden text;
    * layers that change nothing: BuildKit keeps a layer for ``RUN true`` (holding only ``etc/``, the
      mount point of its /etc/hosts and resolv.conf), for WORKDIR of an existing directory and for a
      COPY whose wildcard matched nothing; an empty diff adds no layer here, its history entry is
      ``empty_layer``. So the *tree-changing* layers must be the same, in order, and each holds
      exactly the golden's entries except directories the golden repeats unchanged (``etc``).
    """
    from test_build_config import BUILDKIT, DOCKER_20_10, normalise, plan_case

    g = json.loads((GOLDENS / case / "golden.json").read_text())
    image = golden_builds[case]
    scratch = case.startswith("scratch")
    base_layers = 0 if scratch else len(BASE_INFO["diff_ids"])

    # the layers: diff IDs are the saved tars' digests, the base's come first
    diff_ids = image["config"]["rootfs"]["diff_ids"]
    assert diff_ids == ["sha256:" + hashlib.sha256(data).hexdigest() for data in image["layers"]]
    assert diff_ids[:base_layers] == BASE_INFO["diff_ids"][:base_layers]

    lower = {} if scratch else {e["path"]: e for e in layer_tree(golden_builds["base"]["layers"][0])}
    changing, noop_indexes = [], set()
    for layer in g["layers"]:
        if all(_noop_dir(e, lower) for e in layer["files"]):
            noop_indexes.add(layer["index"])
        else:
            changing.append((layer["index"], layer["files"], dict(lower)))
        lower.update({e["path"]: e for e in layer["files"]})
    mine = [layer_tree(data) for data in image["layers"][base_layers:]]
    assert len(mine) == len(changing), f"layers: {[len(t) for t in mine]} vs golden's tree-changing {changing}"
    for got, (index, want, below) in zip(mine, changing):
        got_paths = {e["path"] for e in got}
        expected = [e for e in want if e["path"] in got_paths or not _noop_dir(e, below)]
        assert got == expected, f"layer {index}"

    # config, apart from the layer list checked above
    got_config, got_history = normalise(image["config"], base_layers)
    want_config, _ = normalise(g["config"], base_layers)
    got_config.pop("rootfs"), want_config.pop("rootfs")
    assert got_config == want_config

    # history: texts in the current style where it differs, empty_layer where the diff was empty
    old, new = plan_case(case, style=DOCKER_20_10).config.history, plan_case(case, style=BUILDKIT).config.history
    assert len(got_history) == len(g["history"]) == len(old) == len(new)
    layer_index = 0
    for i, (got, want) in enumerate(zip(got_history, g["history"])):
        want = dict(want)
        if not want.get("empty_layer"):
            if layer_index in noop_indexes:
                want["empty_layer"] = True
            layer_index += 1
        if old[i].created_by != new[i].created_by:
            assert want["created_by"] == old[i].created_by and want["created_by"].split()[0] in STYLE_KEYWORDS
            want["created_by"] = new[i].created_by
        assert got == want, f"history[{i}]"

    # what `docker inspect` showed
    inspect = image["inspect"]
    want = dict(g["inspect"])
    want["RootFS.Layers"] -= len(noop_indexes)
    assert {k: inspect.get(k) for k in want if k != "RootFS.Layers"} == {k: v for k, v in want.items()
                                                                         if k != "RootFS.Layers"}
    assert len(inspect["RootFS"]["Layers"]) == want["RootFS.Layers"]


def test_golden_differences_are_only_the_known_ones(golden_builds):
    """Which golden layers the builds leave out: exactly the no-change RUN/WORKDIR/COPY ones."""
    left_out = {}
    for case in CASES:
        g = json.loads((GOLDENS / case / "golden.json").read_text())
        lower = {e["path"] for e in layer_tree(golden_builds["base"]["layers"][0])}
        for layer in g["layers"]:
            if all(e["type"] == "dir" and e["path"] in lower for e in layer["files"]):
                left_out.setdefault(case, []).append(sorted(e["path"] for e in layer["files"]))
            lower.update(e["path"] for e in layer["files"])
    assert left_out == {
        "copy-add": [[]],                      # COPY nothing* /empty-glob/
        "run-args": [["etc"]] * 6,             # RUN true ...
        "shell": [["etc"]] * 2,
        "stage-inherit": [["etc"]] * 2,
        "workdir": [[]],                       # WORKDIR /app again
    }


def test_the_base_is_the_goldens_base(golden_builds):
    assert "sha256:" + hashlib.sha256(golden_builds["base"]["raw"]).hexdigest() == BASE_INFO["image_id"]


# ----------------------------------------------------------------------------------------------
# build cache


CACHE_DOCKERFILE = """\
FROM busybox
WORKDIR /app
COPY a.txt ./
RUN cat a.txt > /a.copy
COPY b.txt ./
RUN cat b.txt > /b.copy
ENV DONE=1
RUN echo last > /last
"""


def test_build_cache_second_build_changed_file_and_no_cache(tmp_path, store):
    ctx = write_context(tmp_path / "ctx", CACHE_DOCKERFILE, {"a.txt": "a\n", "b.txt": "b\n"})
    first, progress = built(build(store, ctx))
    states = step_states(progress)
    assert list(states) == ["WORKDIR /app", "COPY a.txt ./", "RUN cat a.txt > /a.copy", "COPY b.txt ./",
                            "RUN cat b.txt > /b.copy", "RUN echo last > /last"]
    assert set(states.values()) == {"DONE"}

    again, progress = built(build(store, ctx))
    assert again == first
    assert set(step_states(progress).values()) == {"CACHED"}

    # a new mtime alone changes nothing; new content rebuilds exactly from the COPY that reads it
    os.utime(ctx / "a.txt", (1, 1))
    assert set(step_states(built(build(store, ctx))[1]).values()) == {"CACHED"}
    (ctx / "b.txt").write_text("b changed\n")
    changed, progress = built(build(store, ctx))
    assert changed != first
    assert step_states(progress) == {
        "WORKDIR /app": "CACHED", "COPY a.txt ./": "CACHED", "RUN cat a.txt > /a.copy": "CACHED",
        "COPY b.txt ./": "DONE", "RUN cat b.txt > /b.copy": "DONE", "RUN echo last > /last": "DONE"}

    progress = built(build(store, ctx, "--no-cache"))[1]
    assert set(step_states(progress).values()) == {"DONE"}
    assert set(step_states(built(build(store, ctx))[1]).values()) == {"CACHED"}


# ----------------------------------------------------------------------------------------------
# reproducible builds


REPRO_DOCKERFILE = """\
FROM busybox
ARG SOURCE_DATE_EPOCH
WORKDIR /app
COPY . ./
COPY --chown=nobody --chmod=600 data/one.txt /secret/
RUN echo "built" > /built.txt && mkdir -p /var/cache/x && touch /var/cache/x/stamp && ln -s /built.txt /link
ENV MODE=release
RUN rm /app/data/two.txt && touch -d @0 /very-old
LABEL version=1
"""


def _repro_context(path: Path) -> Path:
    return write_context(path, REPRO_DOCKERFILE, {"data/one.txt": "one\n", "data/two.txt": "two\n",
                                                  "run.sh": "#!/bin/sh\necho hi\n"})


def test_same_context_and_epoch_in_two_empty_stores_give_the_same_digest(tmp_path, busybox_tar):
    first = _repro_context(tmp_path / "one" / "context")
    os.chmod(first / "run.sh", 0o755)
    second = tmp_path / "elsewhere" / "deeper" / "ctx"
    shutil.copytree(first, second)                       # new mtimes, another absolute path
    os.utime(second / "data" / "one.txt", (2_000_000_000, 2_000_000_000))
    epoch = "1700000000"
    ids = []
    for n, (ctx, how) in enumerate([(first, "env"), (second, "env"), (second, "arg"), (first, "both")]):
        root = new_store(tmp_path / f"store{n}", busybox_tar)
        env = {"SOURCE_DATE_EPOCH": epoch} if how in ("env", "both") else {"SOURCE_DATE_EPOCH": ""}
        args = ("--build-arg", f"SOURCE_DATE_EPOCH={epoch}") if how in ("arg", "both") else ()
        ids.append(built(build(root, ctx, *args, env=env))[0])
    assert len(set(ids)) == 1, ids

    # what makes it so: times from the epoch, new files' mtimes clamped to it, older ones kept
    root = tmp_path / "store0"
    ok(pb(root, "tag", ids[0], "repro:1"))
    image = saved_images(root, ["repro:1"], tmp_path / "repro.tar")["repro:1"]
    config = image["config"]
    assert config["created"] == "2023-11-14T22:13:20Z"
    assert {h["created"] for h in config["history"][1:]} == {"2023-11-14T22:13:20Z"}
    mtimes = {}
    for data in image["layers"][1:]:
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            mtimes.update({m.name.rstrip("/"): m.mtime for m in tar})
    assert mtimes.pop("very-old") == 0
    assert set(mtimes.values()) == {int(epoch)}, mtimes


def test_without_an_epoch_digests_differ_only_by_times(tmp_path, busybox_tar):
    ctx = _repro_context(tmp_path / "ctx")
    ids = [built(build(new_store(tmp_path / f"s{n}", busybox_tar), ctx, env={"SOURCE_DATE_EPOCH": ""}))[0]
           for n in range(2)]
    assert ids[0] != ids[1]


# ----------------------------------------------------------------------------------------------
# COPY, WORKDIR, USER


COPY_FILES = {"hello.txt": "hello\n", "dir/a.txt": "a\n", "dir/sub/b.txt": "b\n", "dir/.hidden": "h\n",
              "x.md": "x\n", ".dot.md": "dot\n",
              "etc-extra/passwd": "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
                                  "alice:x:1001:1002:Alice:/home/alice:/bin/sh\n",
              "etc-extra/group": "root:x:0:\nnogroup:x:65534:\nstaff:x:1002:\nother:x:2000:\n"}

COPY_DOCKERFILE = """\
FROM busybox
COPY etc-extra/passwd etc-extra/group /etc/
COPY hello.txt /into-dir/
COPY hello.txt /renamed.txt
COPY dir /dir-contents
COPY dir/ hello.txt /several/
COPY nothing* /never/
COPY nothing* hello.txt /mixed/
COPY *.md /md/
COPY dir/*.txt /single-match
COPY hello.txt /chown/plain.txt
COPY --chown=alice hello.txt /chown/by-name.txt
COPY --chown=1001 hello.txt /chown/by-id.txt
COPY --chown=alice:other hello.txt /chown/name-group.txt
COPY --chown=65534:2000 hello.txt /chown/ids.txt
COPY --chown=alice dir /chown/newdir/
COPY --chmod=640 hello.txt /chmod/file.txt
COPY --chmod=0700 dir /chmod/dir/
WORKDIR /w
COPY hello.txt relative.txt
COPY ["hello.txt", "json dest.txt"]
"""


@pytest.fixture(scope="module")
def copy_image(tmp_path_factory, store):
    work = tmp_path_factory.mktemp("copy")
    ctx = write_context(work / "ctx", COPY_DOCKERFILE, COPY_FILES)
    os.chmod(ctx / "dir" / "sub" / "b.txt", 0o755)
    image_id, progress = built(build(store, ctx, "-t", "copy:1"))
    image = saved_images(store, ["copy:1"], work / "copy.tar")["copy:1"]
    return {"tree": image_tree(image), "config": image["config"], "progress": progress, "image": image}


def _entry(tree, path) -> tuple:
    e = tree[path]
    return (e["type"], e["mode"], e["uid"], e["gid"]) + ((e["size"],) if e["type"] == "file" else ())


def test_copy_file_to_dir_rename_and_dir_contents(copy_image):
    tree = copy_image["tree"]
    assert _entry(tree, "into-dir") == ("dir", "0755", 0, 0)
    assert _entry(tree, "into-dir/hello.txt") == ("file", "0644", 0, 0, 6)
    assert tree["into-dir/hello.txt"]["sha256"] == hashlib.sha256(b"hello\n").hexdigest()
    assert _entry(tree, "renamed.txt") == ("file", "0644", 0, 0, 6)
    # a directory source copies its contents (dotfiles too), modes kept, owner root
    assert sorted(p for p in tree if p.startswith("dir-contents/")) == [
        "dir-contents/.hidden", "dir-contents/a.txt", "dir-contents/sub", "dir-contents/sub/b.txt"]
    assert _entry(tree, "dir-contents/sub/b.txt") == ("file", "0755", 0, 0, 2)
    assert sorted(p for p in tree if p.startswith("several/")) == [
        "several/.hidden", "several/a.txt", "several/hello.txt", "several/sub", "several/sub/b.txt"]
    # relative destinations are under WORKDIR; the JSON form allows spaces
    assert _entry(tree, "w/relative.txt") == ("file", "0644", 0, 0, 6)
    assert _entry(tree, "w/json dest.txt") == ("file", "0644", 0, 0, 6)


def test_copy_wildcards(copy_image):
    tree = copy_image["tree"]
    # matching nothing is no error, and creates nothing (BuildKit: not even the destination)
    assert "never" not in tree
    assert sorted(p for p in tree if p.startswith("mixed")) == ["mixed", "mixed/hello.txt"]
    # "*" matches dotfiles (Go's filepath.Match); one match is copied to the destination itself
    assert sorted(p for p in tree if p.startswith("md")) == ["md", "md/.dot.md", "md/x.md"]
    assert _entry(tree, "single-match") == ("file", "0644", 0, 0, 2)
    states = step_states(copy_image["progress"])
    assert states["COPY nothing* /never/"] == "DONE"
    never = [h for h in copy_image["config"]["history"] if h.get("created_by", "").startswith("COPY nothing* /never/")]
    assert never and never[0].get("empty_layer") is True


def test_copy_chown_and_chmod(copy_image):
    tree = copy_image["tree"]
    # BuildKit's file op: a name gets its passwd uid and gid, a bare id is used for both
    assert _entry(tree, "chown/by-name.txt")[2:4] == (1001, 1002)
    assert _entry(tree, "chown/by-id.txt")[2:4] == (1001, 1001)
    assert _entry(tree, "chown/name-group.txt")[2:4] == (1001, 2000)
    assert _entry(tree, "chown/ids.txt")[2:4] == (65534, 2000)
    # directories the COPY creates get the owner too (the parent that existed before does not)
    assert _entry(tree, "chown") == ("dir", "0755", 0, 0)
    for path in ("chown/newdir", "chown/newdir/sub", "chown/newdir/sub/b.txt", "chown/newdir/.hidden"):
        assert _entry(tree, path)[2:4] == (1001, 1002), path
    assert _entry(tree, "chmod/file.txt") == ("file", "0640", 0, 0, 6)
    assert _entry(tree, "chmod/dir/a.txt")[:2] == ("file", "0700")


def test_copy_missing_source_is_buildkits_error(tmp_path, store):
    ctx = write_context(tmp_path / "ctx", "FROM busybox\nCOPY hello.txt missing.txt /x/\n", {"hello.txt": "h\n"})
    before = sorted(os.listdir(store / "images"))
    err = fails(build(store, ctx))
    assert 'failed to compute cache key: "/missing.txt": not found' in err
    # a source that climbs out of the context is looked up inside it, as BuildKit does
    (ctx / "Dockerfile").write_text("FROM busybox\nCOPY ../../etc/passwd /x\n")
    assert 'failed to compute cache key: "/etc/passwd": not found' in fails(build(store, ctx))
    assert sorted(os.listdir(store / "images")) == before


USER_DOCKERFILE = """\
FROM busybox
RUN echo 'app:x:1500:1600:App:/home/app:/bin/sh' >> /etc/passwd && echo 'appgrp:x:1600:' >> /etc/group
WORKDIR /abs/dir
WORKDIR rel/../sub
RUN pwd > /pwd-root.txt
USER app
WORKDIR /owned/by/app
RUN id -u > id-u.txt && id -g > id-g.txt && pwd > pwd.txt && touch made-by-app
USER 1234:5678
RUN id > /tmp/id-numeric.txt
USER root
WORKDIR /
RUN pwd > /pwd-last.txt
"""


def test_workdir_and_user_through_run(tmp_path, store):
    ctx = write_context(tmp_path / "ctx", USER_DOCKERFILE)
    ok(build(store, ctx, "-t", "user:1"))
    image = saved_images(store, ["user:1"], tmp_path / "user.tar")["user:1"]
    tree = image_tree(image)
    config = image["config"]["config"]
    assert config["User"] == "root" and config["WorkingDir"] == "/"

    def text(path: str) -> str:
        return layer_text(image, path)

    # WORKDIR: absolute, relative joined and cleaned; created by the USER of the time
    assert text("pwd-root.txt") == "/abs/dir/sub\n"
    assert _entry(tree, "abs/dir/sub") == ("dir", "0755", 0, 0)
    assert "abs/dir/rel" not in tree
    for path in ("owned", "owned/by"):
        assert _entry(tree, path) == ("dir", "0755", 0, 0), path
    assert _entry(tree, "owned/by/app") == ("dir", "0755", 1500, 1600)
    # USER by name: RUN runs as its passwd uid/gid, in WORKDIR
    assert text("owned/by/app/id-u.txt") == "1500\n"
    assert text("owned/by/app/id-g.txt") == "1600\n"
    assert text("owned/by/app/pwd.txt") == "/owned/by/app\n"
    assert _entry(tree, "owned/by/app/made-by-app")[2:4] == (1500, 1600)
    assert text("tmp/id-numeric.txt").startswith("uid=1234 gid=5678")
    assert text("pwd-last.txt") == "/\n"
