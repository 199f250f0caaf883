"""RUN in a real build: a failing step, an interrupted step, and what a step can see of the host.

* A failing RUN reports ``Dockerfile:LINE``, the command, its exit code and the last lines of its
  output, exits 1 without a traceback, and leaves the store as it was: no image, no layer record, no
  build-cache entry, no lease, nothing in ``tmp/`` once the store is opened again, nothing of pybuild
  in ``/proc/mounts``.
* The same when the build gets SIGINT while the RUN is running (its output is on the screen).
* A RUN step does not see host processes or host paths, cannot write host paths, and has its own
  hostname (BuildKit's ``buildkitsandbox``).
"""

from __future__ import annotations

import io
import os
import select
import signal
import socket
import subprocess
import sys
import tarfile
import time
import uuid
from pathlib import Path

import pytest

from helpers import REPO
from image_fixtures import _BYTECODE, fails, ok, pb
from test_build_engine import build, image_tree, saved_images, store, write_context  # noqa: F401  (store: fixture)

STATE = ("images", "layers", "blobs", "buildcache", "leases", "tags.json")


def store_state(root: Path) -> dict[str, list[str]]:
    """Everything that is content or a record of the store (not the parse / stat caches)."""
    state = {}
    for name in STATE:
        path = root / name
        if path.is_dir():
            state[name] = sorted(str(p.relative_to(root)) for p in path.rglob("*"))
        else:
            state[name] = [path.read_text()] if path.exists() else []
    return state


def pybuild_mounts(root: Path) -> list[str]:
    """Lines of /proc/mounts (and our mountinfo) that mention the store or a RUN sandbox's directories."""
    found = []
    for table in ("/proc/mounts", "/proc/self/mountinfo"):
        with open(table) as fh:
            found += [line for line in fh if str(root) in line or ".pybuild-run-" in line or "snap-pending-" in line]
    return found


def processes_with(token: str) -> list[int]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                if token.encode() in fh.read():
                    found.append(int(pid))
        except OSError:
            continue
    return found


def after_reopen(root: Path) -> list[str]:
    """Open the store again (it sweeps what dead processes left in tmp/); what tmp/ still holds."""
    ok(pb(root, "images"))
    return sorted(os.listdir(root / "tmp"))


# ----------------------------------------------------------------------------------------------
# a failing RUN


FAILING = """\
FROM busybox
ENV GREETING=hello
RUN echo "$GREETING from the step"; \\
    for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15; do echo "output line $i"; done; \\
    echo "on stderr" >&2; exit 3
CMD ["never"]
"""


def test_failing_run_reports_line_command_exit_code_and_output(tmp_path, store):
    ctx = write_context(tmp_path / "ctx", FAILING)
    before = store_state(store)
    result = build(store, ctx, "-t", "failing:1", "-q")
    err = fails(result)
    first_line = err.splitlines()[0]
    where = str(ctx / "Dockerfile")                          # the context as given on the command line + Dockerfile
    assert first_line.startswith(f"error: {where}:3: RUN failed (exit code 3): /bin/sh -c "), err
    assert 'echo "$GREETING from the step"' in first_line and "exit 3" in first_line
    assert "output line 15" in err and "on stderr" in err           # the last lines of its output
    assert "output line 1\n" not in err                             # ... only the last ones
    assert store_state(store) == before
    assert after_reopen(store) == []
    assert pybuild_mounts(store) == []


def test_failing_run_in_plain_progress_shows_output_then_the_error(tmp_path, store):
    ctx = write_context(tmp_path / "ctx", FAILING)
    result = build(store, ctx)
    assert result.returncode == 1
    stderr = result.stderr.decode()
    assert "Traceback" not in stderr
    shown, _, error = stderr.partition("\nerror: ")
    assert "#2 [stage-0 2/3] RUN echo" in shown                  # ENV is step 1 of 3
    assert "#2 hello from the step\n" in shown and "#2 output line 1\n" in shown
    assert error.startswith(f"{ctx / 'Dockerfile'}:3: RUN failed (exit code 3)")


# ----------------------------------------------------------------------------------------------
# SIGINT during a RUN


def _start(root: Path, ctx: Path) -> subprocess.Popen:
    env = dict(os.environ, **_BYTECODE)
    env.pop("PYBUILD_DEBUG", None)
    return subprocess.Popen([sys.executable, "-m", "builder.cli", "--root", str(root), "build", "--progress",
                             "plain", str(ctx)], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)


def _wait_for(proc: subprocess.Popen, text: bytes, timeout: float = 30) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout
    while text not in seen:
        left = deadline - time.monotonic()
        assert left > 0 and proc.poll() is None, f"never saw {text!r}: {seen.decode(errors='replace')}"
        ready, _, _ = select.select([proc.stderr], [], [], left)
        if ready:
            seen += os.read(proc.stderr.fileno(), 65536)
    return seen


@pytest.mark.parametrize("to", ["process", "group"])
def test_sigint_during_run_leaves_nothing(tmp_path, store, to):
    token = uuid.uuid4().hex
    ctx = write_context(tmp_path / "ctx", f"FROM busybox\nRUN echo step-is-running; sleep 30; echo {token}\n")
    before = store_state(store)
    proc = _start(store, ctx)
    try:
        seen = _wait_for(proc, b"#1 step-is-running\n")
        assert processes_with(token), "the RUN's shell is running"
        assert pybuild_mounts(store) == [], "the sandbox mounts in its own namespace"
    except BaseException:
        _kill(proc)
        raise
    interrupt_and_check(proc, store, before, token, seen, to_group=(to == "group"))


def _kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def interrupt_and_check(proc: subprocess.Popen, store: Path, before: dict, token: str, seen: bytes, *,
                        to_group: bool = True) -> None:
    """SIGINT a running build (its group, as ^C does, or the process alone): it exits 1 within 10 s
    without a traceback, and leaves no process of its RUNs, no store record, no tmp entry, no mount."""
    started = time.monotonic()
    try:
        if to_group:
            os.killpg(proc.pid, signal.SIGINT)    # what ^C in a terminal does
        else:
            proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=20)
    finally:
        _kill(proc)
    assert time.monotonic() - started < 10
    stderr = (seen + stderr).decode(errors="replace")
    assert proc.returncode == 1, stderr
    assert "Traceback" not in stderr, stderr
    assert processes_with(token) == []
    assert store_state(store) == before
    assert after_reopen(store) == []
    assert pybuild_mounts(store) == []


# ----------------------------------------------------------------------------------------------
# what a RUN sees of the host


def test_run_is_isolated_from_the_host(tmp_path, store):
    host_dir = tmp_path / f"host-{uuid.uuid4().hex}"
    host_dir.mkdir()
    (host_dir / "secret").write_text("host secret\n")
    escape = tmp_path / "escape"
    host_name = socket.gethostname()
    ctx = write_context(tmp_path / "ctx", f"""\
FROM busybox
RUN for p in /proc/[0-9]*; do echo "${{p#/proc/}} $(tr '\\0' ' ' < $p/cmdline)"; done > /processes
RUN if [ -e {host_dir}/secret ]; then echo visible; else echo absent; fi > /host-path; \\
    ls / > /root-listing
RUN mkdir -p {escape} && echo written > {escape}/file
RUN hostname > /hostname; cat /proc/sys/kernel/hostname >> /hostname; \\
    (hostname changed-by-run 2>&1 || true) > /sethostname
""")
    ok(build(store, ctx, "-t", "isolation:1"))
    image = saved_images(store, ["isolation:1"], tmp_path / "isolation.tar")["isolation:1"]
    tree = image_tree(image)

    def text(path: str) -> str:
        for data in reversed(image["layers"]):
            with tarfile.open(fileobj=io.BytesIO(data)) as tar:
                if path in tar.getnames():
                    return tar.extractfile(path).read().decode()
        raise KeyError(path)

    # processes: its own PID namespace (its init, the shell and what the shell runs), none of ours
    processes = text("processes").splitlines()
    pids = sorted(int(line.split()[0]) for line in processes)
    assert pids[0] == 1 and len(pids) <= 5, processes
    assert not any("pytest" in line or "builder.cli" in line for line in processes), processes
    assert len([p for p in os.listdir("/proc") if p.isdigit()]) > len(pids)
    # host paths: not there, and what it writes lands in the layer, not on the host
    assert text("host-path") == "absent\n"
    listing = set(text("root-listing").split())
    assert listing <= {p for p in tree if "/" not in p}
    host_only = set(os.listdir("/")) - {p for p in tree if "/" not in p}
    assert host_only and not host_only & listing, host_only
    assert not escape.exists()
    assert text(str(escape / "file").lstrip("/")) == "written\n"
    # its own hostname (BuildKit's), which it cannot change; the host's is untouched
    assert text("hostname") == "buildkitsandbox\nbuildkitsandbox\n"
    assert "changed-by-run" not in text("hostname") and socket.gethostname() == host_name
    assert host_name != "buildkitsandbox"


def test_missing_copy_source_names_the_dockerfile_line(tmp_path, store):
    ctx = write_context(tmp_path / "ctx", "FROM busybox\nCOPY present.txt missing.txt /dst/\n")
    (ctx / "present.txt").write_text("here\n")
    before = store_state(store)
    err = fails(build(store, ctx, "-t", "missing:1"))
    assert err.startswith(f'error: {ctx / "Dockerfile"}:2: failed to compute cache key: "/missing.txt": not found\n'), err
    assert " 2 | COPY present.txt missing.txt /dst/" in err and "Traceback" not in err
    assert store_state(store) == before


def test_a_base_image_missing_from_the_store_names_the_from_line(tmp_path, store):
    ctx = write_context(tmp_path / "ctx", "ARG TAG=1\nFROM nosuch:$TAG\nRUN true\n")
    err = fails(build(store, ctx))
    assert err.startswith(f"error: {ctx / 'Dockerfile'}:2: base image 'nosuch:1' is not in the local store"), err
    assert " 2 | FROM nosuch:$TAG" in err and "Traceback" not in err


def test_tty_progress_draws_a_bar_for_a_long_copy_and_plain_does_not(tmp_path, store):
    ctx = write_context(tmp_path / "ctx", "FROM busybox\nCOPY big.bin /big.bin\n")
    (ctx / "big.bin").write_bytes(os.urandom(3 << 20))
    tty = pb(store, "build", "--progress", "tty", "--no-cache", "-t", "bar:1", str(ctx))
    assert tty.returncode == 0, tty.stderr.decode()
    text = tty.stderr.decode()
    assert "#1 copying" in text and "B/s" in text
    plain = pb(store, "build", "--progress", "plain", "--no-cache", "-t", "bar:1", str(ctx))
    assert plain.returncode == 0 and b"copying" not in plain.stderr
