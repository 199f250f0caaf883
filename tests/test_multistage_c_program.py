"""The multi-stage example the build engine must show: compile in Debian, ship on busybox and scratch.

The build stage is a Debian bookworm rootfs with gcc and libc6-dev (``bin/debian-rootfs``, made once
per machine, see ``image_fixtures.debian_gcc_tar``); it compiles a static C program. The final stages
copy only the binary onto busybox and onto scratch: the images are under 5 MB, hold nothing of the
build stage (no compiler, no sources, no Debian files), and the binary runs in them (``pybuild run``).
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from image_fixtures import import_debian_gcc, ok, pb
from test_build_engine import build, built, new_store, write_context

PROGRAM = r"""
#include <stdio.h>
int main(int argc, char **argv) {
    printf("hello from a static binary, %d args\n", argc - 1);
    return argc > 1 ? 3 : 0;
}
"""

DOCKERFILE = """\
FROM debian-gcc:bookworm AS build
WORKDIR /src
COPY hello.c .
RUN gcc -static -O2 -o /usr/local/bin/hello hello.c && strip /usr/local/bin/hello

FROM busybox AS on-busybox
COPY --from=build /usr/local/bin/hello /usr/local/bin/hello
CMD ["/usr/local/bin/hello"]

FROM scratch AS on-scratch
COPY --from=build /usr/local/bin/hello /hello
ENTRYPOINT ["/hello"]
"""


@pytest.fixture(scope="module")
def store(tmp_path_factory, busybox_tar, debian_gcc_tar) -> Path:
    root = new_store(tmp_path_factory.mktemp("c-program") / "root", busybox_tar)
    import_debian_gcc(root, debian_gcc_tar)
    return root


@pytest.fixture(scope="module")
def context(tmp_path_factory) -> Path:
    return write_context(tmp_path_factory.mktemp("c-ctx") / "ctx", DOCKERFILE, {"hello.c": PROGRAM})


def _image_files(store: Path, ref: str, tmp: Path) -> tuple[int, set[str], dict]:
    """(total layer bytes, every path in every layer, config) of a saved image."""
    out = tmp / "image.tar"
    ok(pb(store, "save", "-o", str(out), ref))
    names: set[str] = set()
    size = 0
    with tarfile.open(out) as tar:
        entry = json.load(tar.extractfile("manifest.json"))[0]
        config = json.load(tar.extractfile(entry["Config"]))
        for layer in entry["Layers"]:
            data = tar.extractfile(layer).read()
            size += len(data)
            with tarfile.open(fileobj=io.BytesIO(data)) as inner:
                names.update(m.name.lstrip("./") for m in inner.getmembers())
    return size, names, config


@pytest.mark.parametrize("target, ref, path", [("on-busybox", "hello-c:busybox", "usr/local/bin/hello"),
                                               ("on-scratch", "hello-c:scratch", "hello")])
def test_static_program_ships_alone(store, context, tmp_path, target, ref, path):
    built(build(store, context, "--target", target, "-t", ref))
    size, names, config = _image_files(store, ref, tmp_path)
    assert size < 5 * 1024 * 1024, size
    assert path in names
    for leftover in ("src/hello.c", "usr/bin/gcc", "usr/lib/gcc", "etc/debian_version", "var/lib/dpkg"):
        assert not any(n == leftover or n.startswith(leftover + "/") for n in names), leftover
    history = [h.get("created_by", "") for h in config["history"]]
    assert not any("gcc" in h for h in history), history   # the build stage's steps are not in the image
    result = pb(store, "run", "--rm", "--network", "none", ref)
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.decode() == "hello from a static binary, 0 args\n"
    # the exported root filesystem: the base's files plus the binary, nothing else
    out = tmp_path / "rootfs"
    ok(pb(store, "build", "--progress", "quiet", "--target", target, "-o", str(out), str(context)))
    files = {str(p.relative_to(out)) for p in out.rglob("*")}
    if target == "on-scratch":
        assert files == {"hello"}, files
    else:
        assert "usr/local/bin/hello" in files and not any("gcc" in f or f.startswith("src") for f in files)


def test_exit_code_and_arguments_pass_through(store, context):
    built(build(store, context, "--target", "on-scratch", "-t", "hello-c:scratch"))
    result = pb(store, "run", "--rm", "--network", "none", "hello-c:scratch", "one", "two")
    assert result.returncode == 3
    assert result.stdout.decode() == "hello from a static binary, 2 args\n"


def test_second_target_reuses_the_build_stage(store, context):
    built(build(store, context, "--target", "on-busybox", "-t", "hello-c:busybox"))
    _, progress = built(build(store, context, "--target", "on-scratch", "-t", "hello-c:scratch2",
                              env={"PYBUILD_NO_MEMO": "1"}))
    assert "RUN gcc" in progress
    run_line = next(line for line in progress.splitlines() if "RUN gcc" in line)
    number = run_line.split()[0]
    assert f"{number} CACHED" in progress, progress
