"""The Debian base of the build tests: ``bin/debian-rootfs`` (mmdebstrap, bookworm + gcc + libc6-dev)
imported as ``debian-gcc:bookworm`` compiles and runs a static C program inside ``pybuild build``.

The tarball is made once per run by the session fixture ``debian_gcc_tar`` (about 30 s from the
mirror, about 320 MB) and reused from /var/cache/pybuild-tests on machines that keep it.
"""

from __future__ import annotations

import json
import tarfile

import pytest
from image_fixtures import DEBIAN_GCC_IMAGE, fails, import_debian_gcc, ok, pb

HELLO_C = r'''#include <stdio.h>
int main(int argc, char **argv) { printf("hello from static C, %d arg(s)\n", argc - 1); return 0; }
'''


@pytest.fixture(scope="module")
def debian_store(tmp_path_factory, debian_gcc_tar):
    root = tmp_path_factory.mktemp("debian-store")
    image_id = import_debian_gcc(root, debian_gcc_tar)
    assert image_id.startswith("sha256:")
    return root


def test_the_tarball_is_a_bookworm_rootfs_with_gcc(debian_gcc_tar):
    with tarfile.open(debian_gcc_tar) as tar:
        names = set(tar.getnames())
        os_release = tar.extractfile("./etc/os-release").read().decode()
    assert 'VERSION_CODENAME=bookworm' in os_release
    for path in ("./usr/bin/gcc", "./usr/lib/x86_64-linux-gnu/libc.a", "./usr/lib/x86_64-linux-gnu/crt1.o",
                 "./usr/bin/dash", "./usr/bin/apt-get"):
        assert path in names, path
    assert not any(n.startswith("./usr/share/man/") and not n.endswith("/") for n in names)


def test_imported_image_is_linux_amd64(debian_store):
    info = json.loads(ok(pb(debian_store, "image", "inspect", DEBIAN_GCC_IMAGE)))[0]
    assert (info["Os"], info["Architecture"]) == ("linux", "amd64")
    assert len(info["RootFS"]["Layers"]) == 1


def test_build_compiles_and_runs_a_static_c_program(debian_store, tmp_path):
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "hello.c").write_text(HELLO_C)
    (context / "Dockerfile").write_text(
        f"FROM {DEBIAN_GCC_IMAGE}\n"
        "COPY hello.c /src/hello.c\n"
        "RUN gcc -static -O2 -o /usr/local/bin/hello /src/hello.c && /usr/local/bin/hello one\n"
        'CMD ["/usr/local/bin/hello"]\n')
    result = pb(debian_store, "build", "--progress", "plain", "-t", "hello:static", str(context))
    ok(result)
    assert "hello from static C, 1 arg(s)" in result.stderr.decode()
    # the binary is static: it runs in the container (and would on scratch), and says so in its ELF header
    assert ok(pb(debian_store, "run", "--rm", "--network", "none", "hello:static")).strip() == "hello from static C, 0 arg(s)"
    assert ok(pb(debian_store, "run", "--rm", "--network", "none", "hello:static", "/usr/local/bin/hello", "a", "b")) \
        == "hello from static C, 2 arg(s)\n"
    out = tmp_path / "rootfs"
    ok(pb(debian_store, "build", "--progress", "quiet", "-o", f"type=local,dest={out}", str(context)))
    elf = (out / "usr/local/bin/hello").read_bytes()
    assert elf[:4] == b"\x7fELF" and b"/lib64/ld-linux-x86-64.so.2" not in elf  # no program interpreter


def test_a_compile_error_fails_the_build_at_its_line(debian_store, tmp_path):
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text(f"FROM {DEBIAN_GCC_IMAGE}\n"
                                        "RUN echo 'int main(void) { return missing; }' > /x.c && gcc -static /x.c\n")
    stderr = fails(pb(debian_store, "build", "--progress", "quiet", str(context)))
    assert "missing" in stderr and "Dockerfile:2" in stderr


# The multi-stage must-show (Debian build stage, binary shipped alone on busybox/scratch) lives in
# test_multistage_c_program.py.
