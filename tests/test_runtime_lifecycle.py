"""The container lifecycle as a docker user sees it: run -it of an image that must be pulled, ps -a, start,
rm; stop and --init; limits (memory, pids); and cleanup after the pybuild process and the monitor die."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from runtime_helpers import cli, cli_ok, on_terminal, pybuild_cgroups, state, wait_for, cleanup_root


@pytest.fixture
def root(tmp_path) -> Path:
    root = tmp_path / "root"
    yield root
    cleanup_root(root)                  # nothing of a test may stay behind, whatever it left


@pytest.fixture
def busybox(root, busybox_tar) -> str:
    cli_ok(root, "import", str(busybox_tar), "busybox:latest", "--change", 'CMD ["sh"]')
    return "busybox"


def _ps(root, *args) -> list[str]:
    return cli_ok(root, "ps", *args).splitlines()


def test_run_it_pulls_creates_attaches_then_start_brings_files_back_and_rm_removes(root, registry_busybox):
    # The image is not local: run pulls it from the registry, then the user works in a terminal.
    out, code = on_terminal(root, ["run", "-it", "--network", "none", "--name", "box", registry_busybox, "sh"],
                            b"echo kept > /data; tty; echo in-$((6*7)); exit 3\n")
    assert code == 3, out
    assert "Unable to find image" in out and "/dev/pts/0" in out and "in-42" in out, out
    rows = _ps(root, "-a")
    assert rows[0].split() == ["CONTAINER", "ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"]
    assert len(rows) == 2 and "Exited (3)" in rows[1] and rows[1].endswith("box"), rows
    assert len(_ps(root)) == 1                   # not running: only with -a
    doc = json.loads(cli_ok(root, "inspect", "box"))[0]
    assert doc["State"]["Status"] == "exited" and doc["State"]["ExitCode"] == 3 and doc["Name"] == "/box"
    assert doc["Config"]["Tty"] and doc["Config"]["Cmd"] == ["sh"] and doc["Path"] == "sh"
    # start -ai: the same container, its writable layer kept
    out, code = on_terminal(root, ["start", "-ai", "box"], b"cat /data; exit 0\n")
    assert code == 0 and "kept" in out, out
    cid = doc["Id"]
    assert (root / "containers" / cid).is_dir()
    assert cli_ok(root, "rm", "box") == "box\n"
    assert len(_ps(root, "-a")) == 1
    assert not (root / "containers" / cid).exists()
    assert "No such container: box" in cli(root, "rm", "box").stderr.decode()


def test_detached_logs_stop_start_keep_the_writable_layer(root, busybox):
    cid = cli_ok(root, "run", "-d", "--network", "none", "--name", "web", busybox, "sh", "-c",
                 "echo start >> /count; cat /count | wc -l; echo to-stderr >&2; exec sleep 1000").strip()
    assert re.fullmatch(r"[0-9a-f]{64}", cid)
    wait_for(lambda: "to-stderr" in cli(root, "logs", "web").stderr.decode(), what="logs")
    logs = cli(root, "logs", "web")
    assert logs.stdout.decode() == "1\n" and logs.stderr.decode() == "to-stderr\n"
    assert "Up " in _ps(root)[1]
    assert cli_ok(root, "stop", "-t", "1", "web") == "web\n"        # sleep as pid 1 ignores SIGTERM: killed
    assert state(root, cid)["status"] == "exited" and state(root, cid)["exit_code"] == 137
    assert cli_ok(root, "start", "web") == "web\n"
    wait_for(lambda: cli_ok(root, "logs", "web").count("\n") >= 2, what="second start's log")
    assert cli_ok(root, "logs", "web") == "1\n2\n"                  # the file written before the stop is there
    assert cli(root, "rm", "web").returncode == 1                   # running: needs -f
    assert "cannot remove a running container" in cli(root, "rm", "web").stderr.decode()
    assert cli_ok(root, "rm", "-f", "web") == "web\n"
    assert _ps(root, "-a", "-q") == []


def test_stop_kills_a_pid1_that_ignores_sigterm_after_the_timeout_and_init_forwards_it(root, busybox):
    cli_ok(root, "run", "-d", "--network", "none", "--name", "stubborn", busybox, "sleep", "1000")
    started = time.monotonic()
    cli_ok(root, "stop", "-t", "2", "stubborn")
    took = time.monotonic() - started
    assert took >= 2                                            # it waited the whole timeout ...
    assert cli_ok(root, "inspect", "-f", "{{.State.ExitCode}}", "stubborn").strip() == "137"   # ... then SIGKILL
    # --init: pid 1 is docker-init (tini); it passes SIGTERM on to sleep, which dies of it at once
    cli_ok(root, "run", "-d", "--network", "none", "--init", "--name", "polite", busybox, "sleep", "1000")
    pid1 = cli_ok(root, "exec", "polite", "cat", "/proc/1/cmdline").split("\0")
    assert pid1[:3] == ["/sbin/docker-init", "--", "sleep"], pid1
    cli_ok(root, "stop", "-t", "30", "polite")
    assert cli_ok(root, "inspect", "-f", "{{.State.ExitCode}}", "polite").strip() == "143"
    assert time.monotonic() - started - took < 20


def test_wait_and_exit_codes_and_run_rm(root, busybox):
    result = cli(root, "run", "--rm", "--network", "none", busybox, "sh", "-c", "echo out; echo err >&2; exit 5")
    assert result.returncode == 5 and result.stdout == b"out\n" and result.stderr == b"err\n"
    assert _ps(root, "-a", "-q") == []                          # --rm: gone when run returns
    assert cli_ok(root, "run", "--rm", "-i", "--network", "none", busybox, "cat", input=b"piped\n") == "piped\n"
    assert cli_ok(root, "run", "--rm", "--network", "none", busybox, "cat", input=b"not read\n") == ""  # no -i
    missing = cli(root, "run", "--network", "none", busybox, "no-such-command")
    assert missing.returncode == 127 and "executable file not found" in missing.stderr.decode()
    assert "Traceback" not in missing.stderr.decode()
    assert "Created" in _ps(root, "-a")[1]                      # docker leaves it created
    cid = cli_ok(root, "run", "-d", "--network", "none", busybox, "sh", "-c", "sleep 0.3; exit 9").strip()
    assert cli_ok(root, "wait", cid) == "9\n"
    assert cli_ok(root, "container", "prune", "-f").startswith("Deleted Containers:")
    assert _ps(root, "-a", "-q") == []


def test_memory_limit_oom_kills_with_137_and_inspect_says_oomkilled(root, busybox):
    result = cli(root, "run", "--network", "none", "--memory", "64m", "--name", "hog", busybox,
                 "dd", "if=/dev/zero", "of=/dev/null", "bs=200M", "count=1")
    assert result.returncode == 137, result
    doc = json.loads(cli_ok(root, "inspect", "hog"))[0]
    assert doc["State"]["OOMKilled"] is True and doc["State"]["ExitCode"] == 137
    assert doc["HostConfig"]["Memory"] == 64 << 20
    cli_ok(root, "rm", "hog")
    assert not [c for c in pybuild_cgroups() if doc["Id"][:12] in c]
    # the same within the limit runs fine
    assert cli(root, "run", "--rm", "--network", "none", "--memory", "64m", busybox,
               "dd", "if=/dev/zero", "of=/dev/null", "bs=8M", "count=1").returncode == 0


def test_fork_bomb_stops_at_the_pids_limit(root, busybox):
    cid = cli_ok(root, "run", "-d", "--network", "none", "--pids-limit", "50", busybox, "sh", "-c",
                 "bomb() { bomb | bomb & }; bomb; sleep 1000").strip()
    cgroup = wait_for(lambda: [c for c in pybuild_cgroups() if c.endswith(cid[:12])   # v1 pids or cgroup2
                               and Path(c, "pids.max").exists()], what="the pids cgroup")[0]
    wait_for(lambda: int(Path(cgroup, "pids.events").read_text().split()[1]) > 0, what="forks refused")
    assert int(Path(cgroup, "pids.current").read_text()) <= 50
    assert Path(cgroup, "pids.max").read_text().strip() == "50"
    assert subprocess.run(["true"]).returncode == 0             # the host still forks
    cli_ok(root, "rm", "-f", cid, timeout=60)
    assert not [c for c in pybuild_cgroups() if cid[:12] in c]


def test_killing_pybuild_and_the_monitor_leaves_nothing_after_the_next_command(root, busybox):
    cid = cli_ok(root, "run", "-d", "--network", "none", "--memory", "32m", busybox, "sleep", "1000").strip()
    st = state(root, cid)
    assert st["status"] == "running" and st["pid"] > 0
    assert [c for c in pybuild_cgroups() if c.endswith(cid[:12])]
    os.kill(st["monitor_pid"], signal.SIGKILL)
    wait_for(lambda: not os.path.exists(f"/proc/{st['pid']}"), what="the container's processes to die")
    rows = _ps(root, "-a")                                      # the next command tells the truth ...
    assert "Exited (137)" in rows[1], rows
    assert not [c for c in pybuild_cgroups() if cid[:12] in c]  # ... and cleaned up
    assert cid not in Path("/proc/mounts").read_text()
    cli_ok(root, "rm", cid)


def test_detach_with_ctrl_p_ctrl_q_and_attach_again(root, busybox):
    out, code = on_terminal(root, ["run", "-it", "--network", "none", "--name", "det", busybox, "sh"],
                            b"echo before-$((1+1))-detach\n", then=((b"before-2-detach", b"\x10\x11"),))
    assert code == 0 and "before-2-detach" in out, out
    assert "Up " in _ps(root)[1]                               # still running after the client left
    out, code = on_terminal(root, ["attach", "det"], b"echo after-attach-$((2+3)); exit 4\n")
    assert code == 4 and "after-attach-5" in out, out
    assert cli_ok(root, "inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", "det") == "exited 4\n"
    cli_ok(root, "rm", "det")


def test_killing_the_attached_pybuild_run_and_its_monitor(root, busybox):
    import sys

    from runtime_helpers import REPO

    proc = subprocess.Popen([sys.executable, "-m", "builder.cli", "--root", str(root), "run", "--network", "none",
                             "--name", "fg", "--memory", "32m", busybox, "sleep", "1000"], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    cid = wait_for(lambda: [p.name for p in (root / "containers").glob("*") if p.is_dir()]
                   if (root / "containers").is_dir() else None, what="the container")[0]
    wait_for(lambda: state(root, cid)["status"] == "running", what="running")
    st = state(root, cid)
    proc.kill()                                                 # the user's pybuild ...
    proc.wait()
    os.kill(st["monitor_pid"], signal.SIGKILL)                  # ... and the monitor
    wait_for(lambda: not os.path.exists(f"/proc/{st['pid']}"), what="the container's processes to die")
    assert [c for c in pybuild_cgroups() if cid[:12] in c]      # left behind until a pybuild command runs
    assert "Exited (137)" in _ps(root, "-a")[1]
    assert not [c for c in pybuild_cgroups() if cid[:12] in c]
    cli_ok(root, "rm", "fg")
    assert not (root / "containers" / cid).exists()
