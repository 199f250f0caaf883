"""Helpers for the container runtime tests: a CLI runner, a pty-driven terminal session, leftovers."""

from __future__ import annotations

import fcntl
import os
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def cli(root, *args, input: bytes | None = None, timeout: float = 60, env: dict | None = None):
    return subprocess.run([sys.executable, "-m", "builder.cli", "--root", str(root), *args], input=input,
                          capture_output=True, cwd=REPO, timeout=timeout, env=env)


def cli_ok(root, *args, **kw) -> str:
    result = cli(root, *args, **kw)
    assert result.returncode == 0, (args, result.stdout.decode(), result.stderr.decode())
    return result.stdout.decode()


def on_terminal(root, args, script: bytes, *, rows: int = 24, cols: int = 80, timeout: float = 30,
                env: dict | None = None, then: tuple = ()) -> tuple[str, int]:
    """Run the CLI on a fresh pty (the user's terminal), type ``script``; (output, exit code).
    ``then``: (expected output, more input) pairs: each input is typed once its expected output appeared."""
    master, slave = os.openpty()
    try:
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        proc = subprocess.Popen([sys.executable, "-m", "builder.cli", "--root", str(root), *args], stdin=slave,
                                stdout=slave, stderr=slave, cwd=REPO, start_new_session=True, env=env)
        os.write(master, script)
        out = bytearray()
        deadline = time.monotonic() + timeout
        quiet_since = None
        pending = list(then)
        while time.monotonic() < deadline:
            if select.select([master], [], [], 0.1)[0]:
                try:
                    out += os.read(master, 65536)
                except OSError:
                    break
                quiet_since = None
                if pending and pending[0][0] in out:
                    os.write(master, pending.pop(0)[1])
            elif proc.poll() is not None:
                quiet_since = quiet_since or time.monotonic()
                if time.monotonic() - quiet_since > 0.3:
                    break
        else:
            proc.kill()
            proc.wait()
            raise AssertionError(f"{args} did not finish; output so far: {bytes(out)!r}")
        return out.decode(errors="replace"), proc.returncode
    finally:
        os.close(master)
        os.close(slave)


def state(root, cid: str) -> dict:
    import json

    return json.loads((Path(root) / "containers" / cid / "state.json").read_text())


def pybuild_cgroups() -> list[str]:
    """Every pybuild cgroup directory left on this machine (v1 controllers and the unified tree)."""
    found = []
    for base, dirs, _files in os.walk("/sys/fs/cgroup"):
        if os.path.basename(base) == "pybuild":
            found += [os.path.join(base, d) for d in dirs]
            dirs[:] = []
        elif base.count("/") > 7:
            dirs[:] = []
    return found


def wait_for(predicate, timeout: float = 10.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def kill_monitors(root) -> None:
    """SIGKILL the monitors of every container under ``root`` (test teardown)."""
    import json
    import signal

    base = Path(root) / "containers"
    if not base.is_dir():
        return
    for entry in base.iterdir():
        try:
            pid = json.loads((entry / "state.json").read_text()).get("monitor_pid", 0)
            if pid:
                os.kill(pid, signal.SIGKILL)
        except (OSError, ValueError):
            pass


def cleanup_root(root) -> None:
    """Test teardown: remove every container of ``root`` (force), kill any monitor left, and let one more
    command reconcile, so no cgroup, endpoint or process of the test outlives it."""
    if not (Path(root) / "containers").is_dir():
        return
    ids = cli(root, "ps", "-a", "-q", "--no-trunc").stdout.decode().split()
    if ids:
        cli(root, "rm", "-f", "-v", *ids)
    kill_monitors(root)
    cli(root, "ps", "-a")


def find_process(argv: bytes) -> int | None:
    """The pid of the process whose /proc cmdline is exactly ``argv`` (NUL-separated), if any."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                if fh.read() == argv:
                    return int(pid)
        except OSError:
            continue
    return None
