"""``pybuild run -it``: the container gets a real pseudo-terminal, as under ``docker run -it``.

The test plays the user's terminal with a pty of its own: the CLI runs on its slave side (so it sees a
tty on stdin, switches it to raw mode and copies the window size), the test types into the master.
"""

from __future__ import annotations

import fcntl
import signal
import os
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def root(tmp_path_factory, busybox_tar) -> str:
    root = str(tmp_path_factory.mktemp("run-tty") / "root")
    subprocess.run([sys.executable, "-m", "builder.cli", "--root", root, "import", str(busybox_tar), "busybox:latest",
                    "--change", 'CMD ["sh"]'], check=True, cwd=REPO, capture_output=True, timeout=60)
    return root


def _run_on_terminal(root: str, script: bytes, rows: int = 33, cols: int = 101) -> tuple[bytes, int, list, list]:
    """Run ``pybuild run -it busybox sh`` on a fresh pty, type ``script``; return (output, exit code,
    terminal attributes before, after)."""
    master, slave = os.openpty()
    try:
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        before = termios.tcgetattr(slave)
        proc = subprocess.Popen([sys.executable, "-m", "builder.cli", "--root", root, "run", "--network", "none", "-it", "busybox", "sh"],
                                stdin=slave, stdout=slave, stderr=slave, cwd=REPO, start_new_session=True)
        os.write(master, script)
        out = bytearray()
        deadline = time.monotonic() + 8
        quiet_since = None
        while time.monotonic() < deadline:
            if select.select([master], [], [], 0.1)[0]:
                out += os.read(master, 65536)
                quiet_since = None
            elif proc.poll() is not None:       # exited, and nothing more to read for a moment
                quiet_since = quiet_since or time.monotonic()
                if time.monotonic() - quiet_since > 0.3:
                    break
        else:
            proc.kill()
            proc.wait()
            pytest.fail(f"pybuild run -it did not finish; output so far: {bytes(out)!r}")
        after = termios.tcgetattr(slave)
        return bytes(out), proc.returncode, before, after
    finally:
        os.close(master)
        os.close(slave)


def test_run_it_gives_the_container_a_terminal(root):
    out, code, before, after = _run_on_terminal(
        root, b"readlink /proc/self/fd/0; test -t 0 && echo yes''-tty; stty size; echo hi-$((40+2)); exit 7\n")
    text = out.decode(errors="replace")
    assert code == 7, text
    assert "/dev/pts/" in text, text                                   # the command's stdin is a pty ...
    assert "yes-tty" in text, text                                     # ... it is a terminal ...
    assert "33 101" in text, text                                      # ... with the user's window size
    assert "hi-42" in text, text
    assert after == before                                             # the user's terminal is restored


def test_run_it_controlling_terminal_and_job_control(root):
    # The pty is the command's controlling terminal: /dev/tty opens, and the shell owns the foreground.
    out, code, _, _ = _run_on_terminal(
        root, b"echo ctty-$(echo ok >/dev/tty && echo y''es); sleep 0.1 & wait; echo done-$((1+1)); exit 0\n")
    text = out.decode(errors="replace")
    assert code == 0, text
    assert "ctty-yes" in text and "done-2" in text, text


def test_run_t_without_a_user_terminal(root):
    # CI: stdin and stdout are pipes, yet the container still gets a pty (as docker does).
    proc = subprocess.run([sys.executable, "-m", "builder.cli", "--root", root, "run", "--network", "none", "-it", "busybox", "sh"],
                          input=b"test -t 0 && test -t 1 && echo yes\"\"-tty; exit 3\n", capture_output=True, cwd=REPO,
                          timeout=8)
    assert proc.returncode == 3, proc
    assert b"yes-tty\r\n" in proc.stdout, proc


def test_tty_inside_names_the_containers_own_pts(root):
    # The pty comes from the container's devpts instance (console-socket style), so ``tty`` knows it:
    # /dev/pts/0, owned by the user that runs, and /dev/console is the same terminal.
    out, code, _, _ = _run_on_terminal(
        root, b"tty; ls /dev/pts; stat -c 'own=%u' $(tty); test /dev/console -ef /dev/pts/0 && echo con''sole; exit 0\n")
    text = out.decode(errors="replace")
    assert code == 0, text
    assert "/dev/pts/0\r\n" in text and "not a tty" not in text, text
    assert "own=0" in text and "console" in text, text


def test_tty_for_a_non_root_user_and_window_size_changes(root):
    master, slave = os.openpty()
    try:
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 20, 60, 0, 0))
        proc = subprocess.Popen([sys.executable, "-m", "builder.cli", "--root", root, "run", "--network", "none", "-it", "-u", "1000",
                                 "busybox", "sh"], stdin=slave, stdout=slave, stderr=slave, cwd=REPO,
                                start_new_session=True)
        os.write(master, b"stty size; echo first''-done\n")
        out = bytearray()
        deadline = time.monotonic() + 8
        while b"first-done" not in out and time.monotonic() < deadline:
            if select.select([master], [], [], 0.1)[0]:
                out += os.read(master, 65536)
        assert b"20 60" in out, out
        # the user resizes the terminal: pybuild gets SIGWINCH and passes the new size on
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 132, 0, 0))
        os.kill(proc.pid, signal.SIGWINCH)
        time.sleep(0.2)
        os.write(master, b"stty size; tty; id -u; echo hi > /dev/stdout; exit 4\n")
        while proc.poll() is None and time.monotonic() < deadline + 8:
            if select.select([master], [], [], 0.1)[0]:
                out += os.read(master, 65536)
        while select.select([master], [], [], 0.2)[0]:
            try:
                out += os.read(master, 65536)
            except OSError:
                break
        text = out.decode(errors="replace")
        assert proc.returncode == 4, text
        assert "40 132" in text and "/dev/pts/0" in text and "1000\r\n" in text and "hi\r\n" in text, text
    finally:
        os.close(master)
        os.close(slave)
