"""Fixtures and helpers for the image-store tests: the busybox rootfs, a private docker daemon, and
running ``pybuild`` / ``docker`` / ``skopeo`` the way a user does.

The session fixtures are registered in ``conftest.py`` (one busybox tarball, one daemon per run).

The daemon is docker.io 20.10 started on its own socket, data root and exec root under a short temp
directory (unix socket paths are limited to 108 bytes), with no networking of its own (containers run
with ``--network none``). Teardown stops it with SIGTERM (SIGKILL after 30 s), unmounts whatever it
left mounted under its directory and removes the directory.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from helpers import REPO, run_cli

DOCKER = "/usr/bin/docker"
DOCKERD = "/usr/sbin/dockerd"
# A fixed creation time (2020-01-01T00:00:00Z) makes "CREATED" columns and image IDs stable.
EPOCH = 1577836800


# ----------------------------------------------------------------------------------------------
# running things


# These tests start pybuild a few hundred times; compiling its sources each time (when the
# environment says PYTHONDONTWRITEBYTECODE) costs 70 ms a start. Bytecode goes to a cache outside
# the tree instead, so the tree stays clean either way.
_BYTECODE = {"PYTHONDONTWRITEBYTECODE": "",
             "PYTHONPYCACHEPREFIX": os.path.join(tempfile.gettempdir(), f"pybuild-tests-pycache-{os.getuid()}")}


def pb(root, *args: str, input: bytes | None = None, env: dict | None = None):
    """``pybuild --root ROOT ARGS...`` in a fresh interpreter (what a user runs)."""
    return run_cli("--root", str(root), *args, input=input, env={**_BYTECODE, **(env or {})})


def pb_all(root, *commands, env: dict | None = None) -> list:
    """Several read-only ``pybuild`` commands at once (each a list of args); results in order."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(lambda args: pb(root, *args, env=env), commands))


def ok(result) -> str:
    """stdout of a command that must succeed (the assertion shows stderr when it did not)."""
    assert result.returncode == 0, (f"exit {result.returncode}\nstdout: {result.stdout.decode(errors='replace')}\n"
                                    f"stderr: {result.stderr.decode(errors='replace')}")
    assert b"Traceback" not in result.stderr, result.stderr.decode(errors="replace")
    return result.stdout.decode()


def fails(result) -> str:
    """stderr of a command that must fail as pybuild reports errors: exit 1, ``error: ...``, no traceback."""
    stderr = result.stderr.decode(errors="replace")
    assert result.returncode == 1, f"exit {result.returncode}\nstdout: {result.stdout[:2000]!r}\nstderr: {stderr}"
    assert "Traceback" not in stderr, stderr
    assert stderr.startswith("error: "), stderr
    return stderr


def run(*argv: str, input: bytes | None = None, env: dict | None = None, timeout: float = 120,
        check: bool = True) -> subprocess.CompletedProcess:
    full_env = dict(os.environ)
    full_env.update(env or {})
    result = subprocess.run(argv, input=input, env=full_env, capture_output=True, timeout=timeout)
    if check:
        assert result.returncode == 0, (f"{' '.join(argv)}: exit {result.returncode}\n"
                                        f"stdout: {result.stdout.decode(errors='replace')[:3000]}\n"
                                        f"stderr: {result.stderr.decode(errors='replace')[:3000]}")
    return result


def lines(text: str) -> list[str]:
    return text.splitlines()


def columns(table: str) -> tuple[list[str], list[dict[str, str]]]:
    """Split a docker-style table by its header's column offsets: (header names, rows as dicts).

    Offsets come from the header (names are separated by 2+ spaces), so empty cells (``CREATED BY``
    of an imported image) are read right.
    """
    import re

    all_lines = table.splitlines()
    header = all_lines[0]
    starts = [m.start() for m in re.finditer(r"\S+(?: \S+)*", header)]
    names = [header[s:e].strip() for s, e in zip(starts, starts[1:] + [None])]
    rows = []
    for line in all_lines[1:]:
        cells = [line[s:e].strip() for s, e in zip(starts, starts[1:] + [None])]
        rows.append(dict(zip(names, cells)))
    return names, rows


def offsets(table: str) -> list[int]:
    """Start offsets of the header's columns (how docker's tabwriter aligned them)."""
    import re

    return [m.start() for m in re.finditer(r"\S+(?: \S+)*", table.splitlines()[0])]


# ----------------------------------------------------------------------------------------------
# busybox


@pytest.fixture(scope="session")
def busybox_tar(tmp_path_factory) -> Path:
    """A busybox rootfs tarball made by ``bin/busybox-rootfs`` (Debian's busybox-static)."""
    out = tmp_path_factory.mktemp("busybox") / "busybox-rootfs.tar"
    run(str(REPO / "bin" / "busybox-rootfs"), str(out))
    assert out.stat().st_size > 500_000
    return out


# ----------------------------------------------------------------------------------------------
# Debian (bookworm + gcc), for builds that compile


DEBIAN_GCC_PACKAGES = ("gcc", "libc6-dev")
DEBIAN_GCC_IMAGE = "debian-gcc:bookworm"
# Kept between runs where the machine keeps it (CI machines that are reused, developers' machines);
# PYBUILD_TEST_CACHE moves it.
TEST_CACHE = Path(os.environ.get("PYBUILD_TEST_CACHE", "/var/cache/pybuild-tests"))


def _debian_cache_key(packages: tuple) -> str:
    import hashlib

    digest = hashlib.sha256((REPO / "bin" / "debian-rootfs").read_bytes())
    digest.update("\0".join(packages).encode())
    return digest.hexdigest()[:16]


@pytest.fixture(scope="session")
def debian_gcc_tar(tmp_path_factory) -> Path:
    """A Debian bookworm rootfs tarball with gcc and libc6-dev, made by ``bin/debian-rootfs`` (mmdebstrap
    from this machine's Debian mirror, ~30 s) once, then reused from TEST_CACHE while the script and
    the package list stay the same (the key is their hash)."""
    name = f"debian-gcc-bookworm-{_debian_cache_key(DEBIAN_GCC_PACKAGES)}.tar"
    try:
        TEST_CACHE.mkdir(parents=True, exist_ok=True)
        cached = TEST_CACHE / name
        probe = TEST_CACHE / f".probe-{os.getpid()}"
        probe.touch()
        probe.unlink()
    except OSError:  # no writable cache here: make it for this run only
        cached = tmp_path_factory.mktemp("debian") / name
    if not cached.exists():
        run(str(REPO / "bin" / "debian-rootfs"), str(cached), *DEBIAN_GCC_PACKAGES, timeout=1200)
    assert cached.stat().st_size > 50_000_000
    return cached


def import_debian_gcc(root, debian_gcc_tar: Path) -> str:
    """Import the Debian tarball into the store at ``root`` as ``debian-gcc:bookworm``; its image ID."""
    return ok(pb(root, "import", str(debian_gcc_tar), DEBIAN_GCC_IMAGE, env={"SOURCE_DATE_EPOCH": str(EPOCH)})).strip()


# ----------------------------------------------------------------------------------------------
# docker daemon


@dataclass
class Dockerd:
    dir: Path
    socket: Path
    env: dict

    def docker(self, *args: str, input: bytes | None = None, check: bool = True,
               timeout: float = 120) -> subprocess.CompletedProcess:
        return run(DOCKER, *args, input=input, env=self.env, check=check, timeout=timeout)

    def out(self, *args: str, input: bytes | None = None) -> str:
        return self.docker(*args, input=input).stdout.decode()


def _ping(sock: Path) -> bool:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(2)
            s.connect(str(sock))
            s.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            return b" 200 " in s.recv(256)
    except OSError:
        return False


def _mounts_under(prefix: str) -> list[str]:
    found = []
    with open("/proc/self/mountinfo") as fh:
        for line in fh:
            mount_point = line.split()[4].replace("\\040", " ")
            if mount_point == prefix or mount_point.startswith(prefix + "/"):
                found.append(mount_point)
    return found


@pytest.fixture(scope="session")
def dockerd() -> Dockerd:
    """docker.io's daemon on a private socket, for the length of the test session."""
    base = Path(tempfile.mkdtemp(prefix="pbd", dir="/tmp"))
    config = {"storage-driver": "overlay2", "exec-root": str(base / "exec"), "pidfile": str(base / "docker.pid"),
              "iptables": False, "ip-masq": False, "bridge": "none", "log-level": "warn"}
    (base / "daemon.json").write_text(json.dumps(config))
    sock = base / "docker.sock"
    (base / "client").mkdir()
    env = {"DOCKER_HOST": f"unix://{sock}", "DOCKER_CONFIG": str(base / "client"), "DOCKER_BUILDKIT": "0",
           "TZ": "UTC"}  # docker prints times in local time
    log = open(base / "dockerd.log", "wb")
    proc = subprocess.Popen([DOCKERD, "--config-file", str(base / "daemon.json"), "--host", f"unix://{sock}",
                             "--data-root", str(base / "data")], stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while not _ping(sock):
            if proc.poll() is not None or time.monotonic() > deadline:
                log.flush()
                raise AssertionError(f"dockerd did not start (exit {proc.poll()}):\n"
                                     + (base / "dockerd.log").read_text(errors="replace")[-3000:])
            time.sleep(0.05)
        yield Dockerd(base, sock, env)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        log.close()
        for mount_point in sorted(_mounts_under(str(base)), key=len, reverse=True):
            subprocess.run(["umount", "-l", mount_point], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)
